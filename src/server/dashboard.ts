import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { BackstopError } from '../core/errors.ts';
import { securityHeaders } from './securityHeaders.ts';

/**
 * The dashboard: static files from web/ under /ui/, its page at /, and the three browser
 * modules it is built on (Preact, its hooks, htm) served from node_modules under /ui/vendor/,
 * so nothing loads from a CDN and there is no build step. The client talks to the API only.
 */

function webRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
}

/** The only files served from node_modules: the page's import map points at these names. */
const vendorModules: Record<string, string> = {
  'preact.mjs': 'preact',
  'preact-hooks.mjs': 'preact/hooks',
  'htm.mjs': 'htm',
};

/**
 * Only the page's own inline import map may run inline (by its hash); scripts, styles and
 * API calls come from this origin, so an injected string can never load or send anything.
 */
function contentSecurityPolicy(page: string): string {
  const hashes = [...page.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map((match) => `'sha256-${createHash('sha256').update(match[1]!).digest('base64')}'`);
  return [
    "default-src 'none'",
    `script-src 'self' ${hashes.join(' ')}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export async function registerDashboard(app: FastifyInstance): Promise<void> {
  const root = webRoot();
  const page = fs.readFileSync(path.join(root, 'index.html'), 'utf8');
  const csp = contentSecurityPolicy(page);
  const vendorFiles = new Map(Object.entries(vendorModules).map(([name, specifier]) => [name, fileURLToPath(import.meta.resolve(specifier))]));

  await app.register(fastifyStatic, {
    root,
    prefix: '/ui/',
    index: false,
    // Revalidated on every load (ETag): a server upgrade must never mix old and new modules.
    cacheControl: false,
    setHeaders: (reply) => {
      reply.headers({ ...securityHeaders, 'cache-control': 'no-cache' });
    },
  });

  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .headers({ ...securityHeaders, 'content-security-policy': csp, 'cache-control': 'no-cache' })
      .type('text/html; charset=utf-8')
      .send(page),
  );

  app.get<{ Params: { file: string } }>('/ui/vendor/:file', { schema: { hide: true } }, async (request, reply) => {
    const file = vendorFiles.get(request.params.file);
    if (!file) throw new BackstopError('NOT_FOUND', `No dashboard module ${request.params.file.slice(0, 100)}.`);
    return reply
      .headers({ ...securityHeaders, 'cache-control': 'no-cache' })
      .type('text/javascript; charset=utf-8')
      .send(fs.createReadStream(file));
  });
}
