import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { BackstopError } from '../core/errors.ts';

/** The header a dashboard signed in with a cookie sends its session's CSRF token in. */
export const CSRF_HEADER = 'x-backstop-csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Whether the request only reads (and so needs no CSRF token). */
export function isSafeMethod(request: FastifyRequest): boolean {
  return SAFE_METHODS.has(request.method);
}

function sameSecret(given: string | undefined, expected: string): boolean {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A write authenticated by the session cookie must carry the session's CSRF token and come
 * from the dashboard's own origin: a page of another site can make the browser send the
 * cookie, but can neither read the token nor forge the Origin header. Bearer tokens never get
 * here: a browser does not send one on its own.
 */
export function assertSameSiteWrite(request: FastifyRequest, publicUrl: string, csrfToken: string): void {
  const expectedOrigin = new URL(publicUrl).origin;
  const origin = request.headers.origin;
  if (origin !== expectedOrigin) {
    throw new BackstopError(
      'FORBIDDEN',
      `Refused a write from ${origin ? `origin ${origin.slice(0, 100)}` : 'a request without an Origin header'}: the dashboard's sign-in opens writes only from ${expectedOrigin} (BACKSTOP_PUBLIC_URL). Scripts use an API token instead.`,
    );
  }
  const token = request.headers[CSRF_HEADER];
  if (!sameSecret(typeof token === 'string' ? token : undefined, csrfToken)) {
    throw new BackstopError('FORBIDDEN', `Refused a write without this sign-in's CSRF token (the ${CSRF_HEADER} header the dashboard sends). Reload the dashboard and try again.`);
  }
}
