import { storedToken } from './session.js';

/** An API error: the HTTP status and the API's stable code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

/** Called whenever the API answers 401: the token is unknown or was revoked. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export function reportUnauthorized() {
  onUnauthorized();
}

/** Calls the API with the session's token; resolves to the parsed JSON (undefined for 204). */
export async function api(path, { method = 'GET', body, token = storedToken() } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'NETWORK', 'The Backstop server cannot be reached. Check that it is running, then try again.');
  }
  if (response.status === 204) return undefined;
  const text = await response.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, json?.error?.code ?? `HTTP_${response.status}`, json?.error?.message ?? `The server answered ${response.status}.`);
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  return json;
}
