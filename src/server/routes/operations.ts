import type { FastifyInstance } from 'fastify';
import { BackstopError } from '../../core/errors.ts';
import { BACKSTOP_VERSION } from '../../version.ts';
import { requireApiToken } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { sendError } from '../httpErrors.ts';
import { ref } from '../responseSchemas.ts';

const READY_TIMEOUT_MS = 2_000;
const tags = ['operations'];
const status = { type: 'object', required: ['status'], properties: { status: { type: 'string' }, version: { type: 'string' } } } as const;

export function registerOperationRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/healthz', { schema: { tags, summary: 'Liveness: the process answers', security: [], response: { 200: status } } }, async () => ({
    status: 'ok',
    version: BACKSTOP_VERSION,
  }));

  app.get(
    '/readyz',
    {
      schema: {
        tags,
        summary: 'Readiness: the catalog answers',
        security: [],
        response: { 200: status, 503: { description: 'The catalog is unreachable.', ...ref('Error') } },
      },
    },
    async (_request, reply) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          ctx.pool.query('select 1'),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
          }),
        ]);
        return { status: 'ready', version: BACKSTOP_VERSION };
      } catch (error) {
        reply.request.log.warn({ err: error }, 'readiness check failed');
        return sendError(reply, new BackstopError('CATALOG_UNAVAILABLE', 'The catalog database is unreachable; this server cannot serve the API until it is back.'));
      } finally {
        clearTimeout(timer);
      }
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags,
        summary: 'Prometheus metrics',
        description:
          'Open on a server that listens on loopback only; one that listens beyond it (e.g. `--host 0.0.0.0`) asks for an API token of any role (Prometheus: `authorization: {credentials: <viewer token>}`).',
        security: [],
        response: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    async (request, reply) => {
      // Run counts, target activity and request volumes are for operators, not the network.
      if (ctx.metricsNeedToken) await requireApiToken(ctx.pool, request, '/metrics on a server listening beyond loopback');
      await ctx.metrics.refresh();
      return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
    },
  );

  app.get('/api/openapi.json', { config: { access: 'viewer' }, schema: { hide: true } }, async () => app.swagger());
}
