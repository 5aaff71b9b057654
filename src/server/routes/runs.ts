import type { FastifyInstance } from 'fastify';
import { isLiveProgress } from '../../core/runProgress.ts';
import { isTerminal } from '../../core/runState.ts';
import { cancelRun } from '../../operations/cancelRun.ts';
import { issueRunnerToken } from '../../operations/issueRunnerToken.ts';
import { listRunEvents } from '../../operations/listRunEvents.ts';
import { listRuns, runListQuery, type RunListQuery } from '../../operations/listRuns.ts';
import { showArtifacts } from '../../operations/showArtifacts.ts';
import { showRun } from '../../operations/showRun.ts';
import { triggerBackup, triggerRequest, type TriggerRequest } from '../../operations/triggerBackup.ts';
import { runActionsFor } from '../../operations/runCapabilities.ts';
import { actorOf, requestActor, roleOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { runParams } from '../requestSchemas.ts';
import { zodBody, zodJsonSchema } from '../validation.ts';
import { errorResponses, ref } from '../responseSchemas.ts';
import { eventJson } from '../runEventStream.ts';

const tags = ['runs'];

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
        querystring: zodJsonSchema(runListQuery),
        response: { 200: runPage, ...errorResponses },
      },
    },
    async (request) => listRuns(ctx.pool, request.query),
  );

  app.post<{ Body: TriggerRequest }>(
    '/api/v1/runs',
    {
      config: { access: 'operator', audit: 'run.trigger' },
      schema: {
        tags,
        summary: 'Trigger a backup',
        description: 'Queues a run of the target; a worker (or a runner holding a runner token) executes it.',
        body: zodBody(triggerRequest),
        response: { 201: ref('Run'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const run = await triggerBackup(ctx.pool, ctx.config, request.body, { trigger: 'api', actor: requestActor(request) });
      request.log.info({ runId: run.id, target: run.targetName, by: actorOf(request) }, 'run triggered');
      return reply.code(201).send(run);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/runs/:id',
    {
      config: { access: 'viewer' },
      schema: { tags, summary: 'Show a run', params: runParams, response: { 200: ref('Run'), ...errorResponses } },
    },
    async (request) => {
      const run = await showRun(ctx.pool, request.params.id);
      return { ...run, actions: await runActionsFor(ctx.pool, ctx.config, run, roleOf(request)) };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/runs/:id/cancel',
    {
      config: { access: 'operator', audit: 'run.cancel' },
      schema: {
        tags,
        summary: 'Cancel a run',
        description: 'A queued run ends `cancelled` at once; a running one becomes `cancelling` and its runner stops at its next heartbeat.',
        params: runParams,
        response: { 200: ref('Run'), ...errorResponses },
      },
    },
    async (request) => cancelRun(ctx.pool, request.params.id, requestActor(request)),
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
    async (request) => showArtifacts(ctx.pool, request.params.id),
  );

  app.get<{ Params: { id: string }; Headers: { 'last-event-id'?: string } }>(
    '/api/v1/runs/:id/events',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'Events of a run (JSON, or a Server-Sent Events stream)',
        description:
          'With `Accept: text/event-stream`: replays the events after `Last-Event-ID`, streams new ones, and ends with an `end` event once the run is terminal and no restore of its backup is under way (204 when there is nothing left to send). `progress` events (no id) carry the progress of the run, or of a restore of it, as it changes. Otherwise: the events as JSON.',
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
      const afterId = Number(request.headers['last-event-id'] ?? 0);
      const { run, events } = await listRunEvents(ctx.pool, request.params.id, afterId);
      if (!(request.headers.accept ?? '').includes('text/event-stream')) {
        return reply.type('application/json; charset=utf-8').send({ items: events.map(eventJson) });
      }
      if (isTerminal(run.status) && !isLiveProgress(run.progress, false) && events.length === 0) {
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
          "Returned once. It lets a remote runner (e.g. a CI job) claim, heartbeat, report progress, finalize, release, report and add events to this run only. Issuing again replaces the previous token. (GitHub jobs get theirs at claim, in exchange for their repository's GitHub runner token.)",
        params: runParams,
        response: {
          201: { type: 'object', required: ['runId', 'token'], properties: { runId: { type: 'string' }, token: { type: 'string' } } },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const issued = await issueRunnerToken(ctx.pool, request.params.id);
      request.log.info({ runId: issued.runId, by: actorOf(request) }, 'runner token issued');
      return reply.code(201).send(issued);
    },
  );
}
