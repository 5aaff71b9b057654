import type { FastifyReply, FastifyRequest } from 'fastify';
import type { OidcConfig } from '../core/config.ts';

/**
 * The dashboard's cookies: the session, and the state of a sign-in under way. HttpOnly (no
 * script reads them), SameSite=Lax (another site's page cannot make a write carry them; the
 * provider's redirect back is a top-level GET, which does), and Secure with the `__Host-` prefix
 * when the dashboard is served over https, so that no other host or path can set them.
 */

export interface CookieNames {
  session: string;
  signIn: string;
  secure: boolean;
}

export function cookieNames(settings: OidcConfig): CookieNames {
  const secure = settings.publicUrl.startsWith('https:');
  return secure ? { session: '__Host-backstop_session', signIn: '__Host-backstop_sign_in', secure } : { session: 'backstop_session', signIn: 'backstop_sign_in', secure };
}

/** The value of cookie `name` in the request, or undefined. */
export function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at !== -1 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

/** Adds a Set-Cookie header; `maxAgeSeconds` 0 removes the cookie. Values are base64url, never escaped. */
export function setCookie(reply: FastifyReply, names: CookieNames, name: string, value: string, maxAgeSeconds: number): void {
  const attributes = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax', `Max-Age=${maxAgeSeconds}`];
  if (names.secure) attributes.push('Secure');
  const previous = reply.getHeader('set-cookie');
  const list = previous === undefined ? [] : Array.isArray(previous) ? previous.map(String) : [String(previous)];
  reply.header('set-cookie', [...list, attributes.join('; ')]);
}
