// @ts-check
import { roleRank } from './serverConstants.js';

/** @typedef {import('./types').Me} Me */
/** @typedef {import('./types').ApiTokenRole} ApiTokenRole */

/**
 * Two ways in: an API token, or a session cookie from signing in with the provider (set by the
 * server, HttpOnly, never seen here). The API token lives in sessionStorage: it survives a reload of this tab and nothing more,
 * and it is sent only in the Authorization header, never in a URL.
 */
const KEY = 'backstop.token';

export function storedToken() {
  return sessionStorage.getItem(KEY);
}

/** @param {string} token */
export function storeToken(token) {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

/**
 * The CSRF token of a person signed in with the provider (from GET /api/v1/me): sent with every
 * write, which the session cookie alone does not open. Kept in memory only.
 * @type {string | null}
 */
let csrf = null;

export function csrfToken() {
  return csrf;
}

/** @param {string | null} token */
export function setCsrfToken(token) {
  csrf = token;
}

/**
 * Whether the signed-in token has at least `role`.
 * @param {Me | null | undefined} me
 * @param {ApiTokenRole} role
 */
export function can(me, role) {
  return Boolean(me) && roleRank[/** @type {Me} */ (me).role] >= roleRank[role];
}
