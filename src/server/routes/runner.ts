import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BackstopError } from '../../core/errors.ts';
import type { RunnerOutcome } from '../../core/runState.ts';
import { appendRunnerEvent, claimRunById, finalizeRun, getRun, renewLease, type Artifact } from '../../db/runs.ts';
import { actorOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { claimBody, finalizeBody, heartbeatBody, runParams, runnerEventBody } from '../requestSchemas.ts';
import { errorResponses, ref } from '../responseSchemas.ts';

/**
 * The remote runner's side of the lifecycle, over HTTP: the same fenced SQL a worker uses.
 * Callable with the run's runner token (and by operators and admins).
 */

const tags = ['runner'];
const runnerRoute = { access: 'operator', runner: true } as const;
/** Written by the transitions themselves; a runner must not be able to fake one. */
const lifecycleEventKinds = new Set(['created', 'claimed', 'finished', 'released', 'cancel_requested', 'reaped', 'requeued']);

/** Zero rows updated: either the run does not exist (404) or this lease no longer holds it (409). */
async function leaseLost(ctx: ServerContext, runId: string): Promise<never> {
  const run = await getRun(ctx.pool, runId);
  throw new BackstopError(
    'LEASE_LOST',
    `Run ${runId} is no longer held by this lease (it is ${run.status}, attempt ${run.attempt}). Stop working on it: its outcome is decided elsewhere.`,
  );
}

function runnerName(request: FastifyRequest, claimedBy: string | undefined): string {
  return claimedBy ?? `remote ${actorOf(request)} from ${request.ip}`;
}

export function registerRunnerRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Params: { id: string }; Body: { claimedBy?: string } }>(
    '/api/v1/runs/:id/claim',
    {
      config: { ...runnerRoute, optionalBody: true },
      schema: {
        tags,
        summary: 'Claim a queued run',
        description:
          'Starts the run with a new lease. Heartbeat every `heartbeatIntervalMs` with the returned `leaseId`; without one the lease expires after `leaseTtlMs` and the reaper ends the run.',
        params: runParams,
        body: claimBody,
        response: {
          200: {
            type: 'object',
            required: ['leaseId', 'leaseTtlMs', 'heartbeatIntervalMs', 'leaseExpiresAt', 'deadlineAt', 'run'],
            properties: {
              leaseId: { type: 'string', format: 'uuid' },
              leaseTtlMs: { type: 'integer' },
              heartbeatIntervalMs: { type: 'integer' },
              leaseExpiresAt: { type: 'string', format: 'date-time' },
              deadlineAt: { type: 'string', format: 'date-time' },
              run: ref('Run'),
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const claimed = await claimRunById(ctx.pool, request.params.id, {
        leaseTtlMs: ctx.config.leaseTtlMs,
        claimedBy: runnerName(request, request.body?.claimedBy),
      });
      return {
        leaseId: claimed.leaseId,
        leaseTtlMs: Math.round(ctx.config.leaseTtlMs),
        heartbeatIntervalMs: Math.round(ctx.config.heartbeatIntervalMs),
        leaseExpiresAt: claimed.leaseExpiresAt!,
        deadlineAt: claimed.deadlineAt,
        run: claimed,
      };
    },
  );

  app.post<{ Params: { id: string }; Body: { leaseId: string; progress?: Record<string, unknown> | null } }>(
    '/api/v1/runs/:id/heartbeat',
    {
      config: runnerRoute,
      schema: {
        tags,
        summary: 'Extend the lease and report progress',
        description: '409 LEASE_LOST means the run was reaped, finished or claimed again: stop at once. `cancelRequested` asks the runner to stop and finalize as cancelled.',
        params: runParams,
        body: heartbeatBody,
        response: {
          200: {
            type: 'object',
            required: ['status', 'cancelRequested', 'leaseExpiresAt'],
            properties: { status: { type: 'string' }, cancelRequested: { type: 'boolean' }, leaseExpiresAt: { type: 'string', format: 'date-time' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const state = await renewLease(ctx.pool, {
        runId: request.params.id,
        leaseId: request.body.leaseId,
        leaseTtlMs: ctx.config.leaseTtlMs,
        progress: request.body.progress ?? null,
      });
      return state ?? leaseLost(ctx, request.params.id);
    },
  );

  app.post<{
    Params: { id: string };
    Body: { leaseId: string; outcome: RunnerOutcome; error?: { code: string; message: string } | null; artifact?: Artifact | null };
  }>(
    '/api/v1/runs/:id/finalize',
    {
      config: runnerRoute,
      schema: {
        tags,
        summary: 'End the run',
        description: 'Repeating the same finalize with the same lease succeeds; anything else on a finished run is 409 LEASE_LOST.',
        params: runParams,
        body: finalizeBody,
        response: { 200: ref('Run'), ...errorResponses },
      },
    },
    async (request) => {
      const { leaseId, outcome, error, artifact } = request.body;
      if (outcome === 'succeeded' && !artifact) {
        const run = await getRun(ctx.pool, request.params.id);
        if (run.kind === 'backup') {
          throw new BackstopError('INVALID_INPUT', 'A backup can finalize as succeeded only with its artifact (files, sizes and SHA-256, manifest last).');
        }
      }
      return finalizeRun(ctx.pool, {
        runId: request.params.id,
        leaseId,
        outcome,
        error: outcome === 'succeeded' ? null : (error ?? null),
        artifact: outcome === 'succeeded' ? (artifact ?? null) : null,
      });
    },
  );

  app.post<{ Params: { id: string }; Body: { leaseId: string; kind: string; message: string; data?: Record<string, unknown> } }>(
    '/api/v1/runs/:id/events',
    {
      config: runnerRoute,
      schema: {
        tags,
        summary: 'Record an event of the run',
        description: 'Accepted only while the lease holds.',
        params: runParams,
        body: runnerEventBody,
        response: { 204: { type: 'null', description: 'Recorded.' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { leaseId, kind, message, data } = request.body;
      if (lifecycleEventKinds.has(kind)) {
        throw new BackstopError('INVALID_INPUT', `Event kind "${kind}" is recorded by the catalog itself with each transition; pick another kind.`);
      }
      const recorded = await appendRunnerEvent(ctx.pool, { runId: request.params.id, leaseId, kind, message, data });
      if (!recorded) await leaseLost(ctx, request.params.id);
      return reply.code(204).send();
    },
  );
}
