import type { FastifyInstance } from 'fastify';

/**
 * Headers on every response: no MIME sniffing (a JSON error that echoes input can never be
 * read as HTML), no Referer leaking run ids to other sites, and no framing (clickjacking of
 * the dashboard's cancel and restore buttons).
 */
export const securityHeaders = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

/** For everything that is not the dashboard's page: nothing in an API answer may load or run. */
const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/**
 * Adds the headers to every response that does not set its own: the dashboard sets its page's
 * policy and revalidation; API answers (tokens, run details) are never stored by a cache.
 * Event streams write their headers themselves (see runEventStream.ts).
 */
export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(securityHeaders)) if (!reply.hasHeader(name)) reply.header(name, value);
    if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', API_CSP);
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
}
