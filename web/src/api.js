// @ts-check
import { csrfToken, storedToken } from './session.js';

/** @typedef {import('./types').FieldProblem} FieldProblem */

/**
 * An API error: the HTTP status, the API's stable code and message, and the request fields at
 * fault when the API names them (`field`, or `fields` for several at once).
 */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {FieldProblem[]} [fields]
   */
  constructor(status, code, message, fields = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

/** @type {(error: ApiError) => void} */
let onUnauthorized = () => {};

/**
 * Called whenever the API answers 401: the token is unknown or was revoked.
 * @param {(error: ApiError) => void} handler
 */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * The fields an error body names: `fields` entries, and `field` with the message when alone.
 * @param {any} body
 * @returns {FieldProblem[]}
 */
function fieldsOf(body) {
  const error = body?.error;
  /** @type {FieldProblem[]} */
  const fields = Array.isArray(error?.fields) ? error.fields.filter((/** @type {any} */ entry) => typeof entry?.field === 'string' && typeof entry?.message === 'string') : [];
  if (typeof error?.field === 'string' && !fields.some((entry) => entry.field === error.field)) fields.push({ field: error.field, message: String(error.message ?? '') });
  return fields;
}

/** The response of a request, unread: for downloads. Throws ApiError like `api`. */
export async function apiResponse(/** @type {string} */ path, { method = 'GET', token = storedToken() } = {}) {
  /** @type {Record<string, string>} */
  const headers = { 'x-backstop-client': 'dashboard' };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'NETWORK', 'The Backstop server cannot be reached. Check that it is running, then try again.');
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/**
 * The ApiError of a failed response, with the API's own message; a 401 is reported to the
 * unauthorized handler as well, so the page says why the session ended.
 * @param {Response} response
 * @returns {Promise<ApiError>}
 */
export async function errorOf(response) {
  let json;
  try {
    json = JSON.parse(await response.text());
  } catch {
    json = undefined;
  }
  const error = new ApiError(response.status, json?.error?.code ?? `HTTP_${response.status}`, json?.error?.message ?? `The server answered ${response.status}.`, fieldsOf(json));
  if (response.status === 401) onUnauthorized(error);
  return error;
}

/**
 * Calls the API with the session's token; resolves to the parsed JSON (undefined for 204).
 * @param {string} path
 * @param {{ method?: string, body?: unknown, token?: string | null }} [options]
 * @returns {Promise<any>}
 */
export async function api(path, { method = 'GET', body, token = storedToken() } = {}) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json', 'x-backstop-client': 'dashboard' };
  if (token) headers.authorization = `Bearer ${token}`;
  // Without a token the session cookie authenticates, and a write must carry its CSRF token.
  else if (method !== 'GET' && csrfToken()) headers['x-backstop-csrf'] = /** @type {string} */ (csrfToken());
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'NETWORK', 'The Backstop server cannot be reached. Check that it is running, then try again.');
  }
  if (response.status === 204) return undefined;
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(response.status, `HTTP_${response.status}`, 'The server answered something that is not JSON.');
  }
}
