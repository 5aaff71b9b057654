/**
 * The API token lives in sessionStorage: it survives a reload of this tab and nothing more,
 * and it is sent only in the Authorization header, never in a URL.
 */
const KEY = 'backstop.token';

export function storedToken() {
  return sessionStorage.getItem(KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

const rank = { viewer: 0, operator: 1, admin: 2 };

/** Whether the signed-in token has at least `role`. */
export function can(me, role) {
  return Boolean(me) && rank[me.role] >= rank[role];
}
