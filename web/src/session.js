// @ts-check
import { roleRank } from './serverConstants.js';

/** @typedef {import('./types').Me} Me */
/** @typedef {import('./types').ApiTokenRole} ApiTokenRole */

/**
 * The API token lives in sessionStorage: it survives a reload of this tab and nothing more,
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
 * Whether the signed-in token has at least `role`.
 * @param {Me | null | undefined} me
 * @param {ApiTokenRole} role
 */
export function can(me, role) {
  return Boolean(me) && roleRank[/** @type {Me} */ (me).role] >= roleRank[role];
}
