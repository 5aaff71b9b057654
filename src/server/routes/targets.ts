import type { FastifyInstance } from 'fastify';
import { withTransaction } from '../../db/pool.ts';
import { listUnknownBackups } from '../../db/retention.ts';
import { createTarget, deleteTarget, getTarget, listTargets, lockTargetForUpdate, updateTarget } from '../../db/targets.ts';
import { assertTargetEndpointsAllowed } from '../../net/outboundGuard.ts';
import type { ServerContext } from '../context.ts';
import { targetCreateBody, targetParams, targetUpdateBody } from '../requestSchemas.ts';
import { errorResponses, ref } from '../responseSchemas.ts';
import { checkTargetFields, newTargetFrom, type TargetBody } from '../targetInput.ts';

const tags = ['targets'];

const unknownBackup = {
  type: 'object',
  required: ['prefix', 'runId', 'attempt', 'reason', 'detail', 'objects', 'newestAt', 'firstSeenAt', 'lastSeenAt'],
  properties: {
    prefix: { type: 'string', description: "The backup's folder in the target's store." },
    runId: { type: 'string', format: 'uuid' },
    attempt: { type: 'integer' },
    reason: { type: 'string', enum: ['run-missing', 'run-not-succeeded', 'run-of-another-target', 'recorded-elsewhere'] },
    detail: { type: 'string', description: 'What the catalog says of its run, in plain words.' },
    objects: { type: 'integer' },
    newestAt: { type: 'string', format: 'date-time', description: 'Modification time of its newest object.' },
    firstSeenAt: { type: 'string', format: 'date-time' },
    lastSeenAt: { type: 'string', format: 'date-time' },
  },
} as const;

export function registerTargetRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/api/v1/targets',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'List targets',
        response: { 200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: ref('Target') } } }, ...errorResponses },
      },
    },
    async () => ({ items: await listTargets(ctx.pool) }),
  );

  app.post<{ Body: TargetBody & { name: string; databaseUrl: string } }>(
    '/api/v1/targets',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'Create a target',
        description: 'The database URL and notification URLs and secrets are stored and never returned.',
        body: targetCreateBody,
        response: { 201: ref('Target'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const fields = newTargetFrom(request.body, ctx.config.defaultStoreUrl);
      await assertTargetEndpointsAllowed({ storeUrl: request.body.storeUrl, channels: request.body.notifications });
      const target = await createTarget(ctx.pool, fields);
      return reply.code(201).send(target);
    },
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/targets/:name',
    {
      config: { access: 'viewer' },
      schema: { tags, summary: 'Show a target', params: targetParams, response: { 200: ref('Target'), ...errorResponses } },
    },
    async (request) => getTarget(ctx.pool, request.params.name),
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/targets/:name/unknown-backups',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: "Complete backups in a target's store folder that no catalog row vouches for",
        description:
          "As the last prune pass found them (`backstop prune`, or the server's hourly pass). Garbage collection never deletes them: import them with `backstop import`, or delete them with `backstop prune --delete-unknown`.",
        params: targetParams,
        response: {
          200: { type: 'object', required: ['target', 'items'], properties: { target: { type: 'string' }, items: { type: 'array', items: unknownBackup } } },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const target = await getTarget(ctx.pool, request.params.name);
      return { target: target.name, items: await listUnknownBackups(ctx.pool, target.id) };
    },
  );

  app.patch<{ Params: { name: string }; Body: TargetBody }>(
    '/api/v1/targets/:name',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'Change a target',
        description: 'Absent fields keep their value. Runs already queued keep the settings they were created with.',
        params: targetParams,
        body: targetUpdateBody,
        response: { 200: ref('Target'), ...errorResponses },
      },
    },
    async (request) => {
      // Resolved before the row is locked: a slow DNS answer must not hold the lock.
      await assertTargetEndpointsAllowed({ storeUrl: request.body.storeUrl, channels: request.body.notifications });
      // Read-modify-write under the row lock: notification channels keep their write-only
      // URLs and secrets, which only the stored row knows.
      return withTransaction(ctx.pool, async (client) => {
        const existing = await lockTargetForUpdate(client, request.params.name);
        return updateTarget(client, request.params.name, checkTargetFields(request.body, existing.notificationChannels));
      });
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/targets/:name',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'Delete a target',
        description: 'Refused (409 TARGET_BUSY) while one of its runs is not finished. Its run rows go with it; stored backups stay in the store.',
        params: targetParams,
        response: { 204: { type: 'null', description: 'Deleted.' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await deleteTarget(ctx.pool, request.params.name);
      return reply.code(204).send();
    },
  );
}
