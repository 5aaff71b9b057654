import type { FastifyInstance } from 'fastify';
import { BackstopError } from '../../core/errors.ts';
import { isTerminal, type RunStatus } from '../../core/runState.ts';
import { listRunEvents } from '../../db/runEvents.ts';
import { listRunsPage } from '../../db/runListing.ts';
import { createRun, getRun, requestCancel, type RunKind } from '../../db/runRecords.ts';
import { getTarget } from '../../db/targets.ts';
import { issueRunnerToken } from '../../db/tokens.ts';
import { actorOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { decodeRunCursor, encodeRunCursor } from '../runCursor.ts';
import { eventJson } from '../runEventStream.ts';
import { runCreateBody, runListQuery, runParams } from '../requestSchemas.ts';
import { errorResponses, ref } from '../responseSchemas.ts';

const tags = ['runs'];

interface RunListQuery {
  target?: string;
  status?: RunStatus;
  kind?: RunKind;
  limit: number;
  cursor?: string;
  offset?: number;
}

const runPage = {
  type: 'object',
  required: ['items', 'nextCursor'],
  properties: {
    items: { type: 'array', items: ref('Run') },
    nextCursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page; null on the last page.' },
  },
} as const;

export function registerRunRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Querystring: RunListQuery }>(
    '/api/v1/runs',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'List runs, newest first',
        description: 'Filter by target, status and kind; page with `cursor` (stable) or `offset`.',
        querystring: runListQuery,
        response: { 200: runPage, ...errorResponses },
      },
    },
    async (request) => {
      const { target, status, kind, limit, cursor, offset } = request.query;
      if (cursor !== undefined && offset !== undefined) {
        throw new BackstopError('INVALID_INPUT', 'Pass either cursor or offset, not both.');
      }
      if (target !== undefined) await getTarget(ctx.pool, target);
      const after = cursor === undefined ? undefined : decodeRunCursor(cursor);
      // One more than asked tells whether there is a next page without a count.
      const { runs, positions } = await listRunsPage(ctx.pool, { targetName: target, status, kind, limit: limit + 1, after, offset });
      const hasMore = runs.length > limit;
      const last = positions[limit - 1];
      return { items: runs.slice(0, limit), nextCursor: hasMore && last ? encodeRunCursor(last) : null };
    },
  );

  app.post<{ Body: { target: string } }>(
    '/api/v1/runs',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Trigger a backup',
        description: 'Queues a run of the target; a worker (or a runner holding a runner token) executes it.',
        body: runCreateBody,
        response: { 201: ref('Run'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const target = await getTarget(ctx.pool, request.body.target);
      const run = await createRun(ctx.pool, { targetId: target.id, trigger: 'api', runDeadlineMs: ctx.config.runDeadlineMs });
      request.log.info({ runId: run.id, target: target.name, by: actorOf(request) }, 'run triggered');
      return reply.code(201).send(run);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/runs/:id',
    {
      config: { access: 'viewer' },
      schema: { tags, summary: 'Show a run', params: runParams, response: { 200: ref('Run'), ...errorResponses } },
    },
    async (request) => getRun(ctx.pool, request.params.id),
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/runs/:id/cancel',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Cancel a run',
        description: 'A queued run ends `cancelled` at once; a running one becomes `cancelling` and its runner stops at its next heartbeat.',
        params: runParams,
        response: { 200: ref('Run'), ...errorResponses },
      },
    },
    async (request) => requestCancel(ctx.pool, request.params.id, `Cancelled on request (API, ${actorOf(request)}).`),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/runs/:id/artifacts',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'Files of a run’s backup',
        description: 'Store location, and each file’s size and SHA-256 (the manifest last).',
        params: runParams,
        response: {
          200: {
            type: 'object',
            required: ['runId', 'storeUrl', 'prefix', 'files', 'manifest', 'totalBytes'],
            properties: {
              runId: { type: 'string' },
              storeUrl: { type: 'string' },
              prefix: { type: 'string' },
              files: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, size: { type: 'integer' }, sha256: { type: 'string' } } } },
              manifest: { type: 'object', properties: { name: { type: 'string' }, size: { type: 'integer' }, sha256: { type: 'string' } } },
              totalBytes: { type: 'integer' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const run = await getRun(ctx.pool, request.params.id);
      if (!run.artifact) {
        throw new BackstopError('NOT_FOUND', `Run ${run.id} has no backup (it is ${run.status}${run.kind === 'verify' ? ', a verification drill' : ''}).`);
      }
      const { storeUrl, prefix, files, manifest } = run.artifact;
      const totalBytes = files.reduce((sum, file) => sum + file.size, manifest.size);
      return { runId: run.id, storeUrl, prefix, files, manifest, totalBytes };
    },
  );

  app.get<{ Params: { id: string }; Headers: { 'last-event-id'?: string } }>(
    '/api/v1/runs/:id/events',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'Events of a run (JSON, or a Server-Sent Events stream)',
        description:
          'With `Accept: text/event-stream`: replays the events after `Last-Event-ID`, streams new ones, and ends with an `end` event once the run is terminal (204 when there is nothing left to send). Otherwise: the events as JSON.',
        params: runParams,
        headers: {
          type: 'object',
          properties: { 'last-event-id': { type: 'string', pattern: '^[0-9]{1,15}$', description: 'Resume after this event id.' } },
        },
        response: {
          200: {
            description: 'The events',
            content: {
              'application/json': { schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: ref('RunEvent') } } } },
              'text/event-stream': { schema: { type: 'string', description: 'Server-Sent Events: `id` = event id, `data` = the event as JSON.' } },
            },
          },
          204: { type: 'null', description: 'The run is terminal and every event after Last-Event-ID was already sent.' },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const run = await getRun(ctx.pool, request.params.id);
      const afterId = Number(request.headers['last-event-id'] ?? 0);
      if (!(request.headers.accept ?? '').includes('text/event-stream')) {
        const events = await listRunEvents(ctx.pool, run.id, afterId);
        return reply.type('application/json; charset=utf-8').send({ items: events.map(eventJson) });
      }
      if (isTerminal(run.status) && (await listRunEvents(ctx.pool, run.id, afterId)).length === 0) {
        return reply.code(204).send();
      }
      ctx.streams.open(request, reply, run.id, afterId);
      return reply;
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/runs/:id/runner-token',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['runner'],
        summary: 'Issue the runner token of a queued run',
        description:
          "Returned once. It lets a remote runner (e.g. a CI job) claim, heartbeat, finalize, release, report and add events to this run only. Issuing again replaces the previous token. (GitHub jobs get theirs at claim, in exchange for their repository's GitHub runner token.)",
        params: runParams,
        response: {
          201: { type: 'object', required: ['runId', 'token'], properties: { runId: { type: 'string' }, token: { type: 'string' } } },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const run = await getRun(ctx.pool, request.params.id);
      if (isTerminal(run.status)) {
        throw new BackstopError('RUN_ALREADY_TERMINAL', `Run ${run.id} already finished as ${run.status}; trigger a new run instead.`);
      }
      if (run.status !== 'queued' && run.status !== 'dispatched') {
        throw new BackstopError('RUN_NOT_CLAIMABLE', `Run ${run.id} is ${run.status}: it is already being executed.`);
      }
      const token = await issueRunnerToken(ctx.pool, run.id);
      request.log.info({ runId: run.id, by: actorOf(request) }, 'runner token issued');
      return reply.code(201).send({ runId: run.id, token });
    },
  );
}
