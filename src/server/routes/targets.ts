import type { FastifyInstance } from 'fastify';
import { addTarget } from '../../operations/targets/addTarget.ts';
import { deleteTarget } from '../../operations/targets/deleteTarget.ts';
import { listTargets, showTarget } from '../../operations/targets/listTargets.ts';
import { listUnknownBackups } from '../../operations/targets/listUnknownBackups.ts';
import { targetCheckNames } from '../../operations/targets/targetChecks.ts';
import type { TargetCreateInput, TargetUpdateInput } from '../../operations/targets/targetInput.ts';
import { testTarget } from '../../operations/targets/testTarget.ts';
import { updateTarget } from '../../operations/targets/updateTarget.ts';
import { targetActionsFor } from '../../operations/runCapabilities.ts';
import { requestActor, roleOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { targetCreateBody, targetParams, targetUpdateBody } from '../requestSchemas.ts';
import { continuitySchema, errorResponses, nullable, ref } from '../responseSchemas.ts';
import { targetWindow } from '../../operations/targets/targetWindow.ts';

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

const checkError = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' } },
} as const;

const testResult = {
  type: 'object',
  required: ['target', 'ok', 'checks'],
  properties: {
    target: { type: 'string', description: 'The target tested.' },
    ok: { type: 'boolean', description: 'Every check passed.' },
    checks: {
      type: 'array',
      description: 'In order: store-url, database, pg-dump, store-write. A check that needs what a failed one would have found is not tried (ok false, its detail says so, no error).',
      items: {
        type: 'object',
        required: ['name', 'ok', 'detail'],
        properties: { name: { type: 'string', enum: targetCheckNames }, ok: { type: 'boolean' }, detail: { type: 'string' }, error: checkError },
      },
    },
    serverVersion: { type: 'string', description: "The database server's version." },
    pgDump: { type: 'object', required: ['path', 'version'], properties: { path: { type: 'string' }, version: { type: 'string' } } },
  },
} as const;

const deletedTarget = {
  type: 'object',
  required: ['deleted', 'storeUrl', 'keptBackups'],
  properties: {
    deleted: { type: 'string', description: 'The name of the deleted target.' },
    storeUrl: { type: 'string', description: 'Its store.' },
    keptBackups: {
      type: 'array',
      description: 'Its backups, newest first: they stay in the store. `backstop import STORE_URL` brings the target and them back.',
      items: {
        type: 'object',
        required: ['runId', 'storeUrl', 'prefix', 'finishedAt', 'sizeBytes'],
        properties: {
          runId: { type: 'string', format: 'uuid' },
          storeUrl: { type: 'string', description: 'The store it is in (the target may have moved since).' },
          prefix: { type: 'string' },
          finishedAt: { type: 'string', format: 'date-time' },
          sizeBytes: { type: 'integer' },
        },
      },
    },
    warnings: {
      type: 'array',
      items: { type: 'string' },
      description: 'A continuous target whose source could not be reached: its slot and publication stay there, named with what to drop by hand.',
    },
  },
} as const;

const targetWindowSchema = {
  type: 'object',
  required: ['target', 'continuous', 'continuity'],
  properties: {
    target: { type: 'string' },
    continuous: { ...nullable({ type: 'object', additionalProperties: true }), description: 'Its continuous settings, or null when continuity is off.' },
    continuity: { ...nullable(continuitySchema), description: 'Null when the target was never continuous.' },
  },
} as const;

/** Target routes: each parses, calls the target operation the CLI calls too, and answers. */
export function registerTargetRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const deps = { pool: ctx.pool, config: ctx.config };

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
    async () => ({ items: await listTargets(deps) }),
  );

  app.post<{ Body: TargetCreateInput }>(
    '/api/v1/targets',
    {
      config: { access: 'admin', audit: 'target.create' },
      schema: {
        tags,
        summary: 'Create a target',
        description:
          'The database URL and notification URLs and secrets are stored and never returned. Before anything is stored (unless `checks` is false): the store URL must be usable, the database must answer (422 DATABASE_UNREACHABLE), a pg_dump that fits its version must be installed (422 PG_VERSION_MISMATCH) and the store must take a write (422 STORE_WRITE_FAILED); `error.field` names the body field at fault.',
        body: targetCreateBody,
        response: { 201: ref('Target'), ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(await addTarget(deps, request.body, requestActor(request))),
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/targets/:name',
    {
      config: { access: 'viewer' },
      schema: { tags, summary: 'Show a target', params: targetParams, response: { 200: ref('Target'), ...errorResponses } },
    },
    async (request) => {
      const target = await showTarget(deps, request.params.name);
      return { ...target, actions: await targetActionsFor(ctx.pool, ctx.config, target, roleOf(request)) };
    },
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/targets/:name/window',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'The restorable window of a continuous target, and what limits it',
        description:
          'From the oldest stored base backup to the newest durably stored commit, with the gaps where the change archive breaks, the tables not continuously protected, schema changes inside the window, a stopped stream and the current RPO. Read-only; see docs/CONTINUOUS.md.',
        params: targetParams,
        response: { 200: targetWindowSchema, ...errorResponses },
      },
    },
    async (request) => targetWindow(deps, request.params.name),
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
    async (request) => listUnknownBackups(deps, request.params.name),
  );

  app.post<{ Params: { name: string } }>(
    '/api/v1/targets/:name/test',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Check a target: its store URL, its database and version, a fitting pg_dump, a write to its store',
        description: 'Answers 200 with every check whether it passed or not (the test ran); 404 for an unknown target.',
        params: targetParams,
        response: { 200: testResult, ...errorResponses },
      },
    },
    async (request) => testTarget(deps, request.params.name),
  );

  app.patch<{ Params: { name: string }; Body: TargetUpdateInput }>(
    '/api/v1/targets/:name',
    {
      config: { access: 'admin', audit: 'target.update' },
      schema: {
        tags,
        summary: 'Change a target',
        description:
          'Absent fields keep their value; `name` renames it (409 TARGET_EXISTS when taken), `paused` pauses or resumes its schedule. A new `databaseUrl` or `storeUrl` is checked as on create unless `checks` is false. Runs already queued keep the settings they were created with.',
        params: targetParams,
        body: targetUpdateBody,
        response: { 200: ref('Target'), ...errorResponses },
      },
    },
    async (request) => updateTarget(deps, request.params.name, request.body, requestActor(request)),
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/targets/:name',
    {
      config: { access: 'admin', audit: 'target.delete' },
      schema: {
        tags,
        summary: 'Delete a target',
        description: 'Refused (409 TARGET_BUSY) while one of its runs is not finished. Its run history goes with it; its backups stay in the store and are listed in the answer.',
        params: targetParams,
        response: { 200: deletedTarget, ...errorResponses },
      },
    },
    async (request) => deleteTarget(deps, request.params.name, requestActor(request)),
  );
}
