import type { FastifyInstance, FastifyRequest } from 'fastify';
import { finalizeReportedRun } from '../../control/finalizeReportedRun.ts';
import { reportJobStatus, type JobStatus } from '../../control/jobReport.ts';
import { BackstopError } from '../../core/errors.ts';
import type { RunnerOutcome } from '../../core/runState.ts';
import { withTransaction } from '../../db/pool.ts';
import type { Artifact } from '../../core/artifact.ts';
import { appendRunnerEvent } from '../../db/runEvents.ts';
import { claimRunById, releaseRun, renewLease } from '../../db/runLeases.ts';
import { getRun } from '../../db/runRecords.ts';
import { getTargetWithSecret } from '../../db/targets.ts';
import { issueRunnerToken } from '../../db/tokens.ts';
import { actorOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { claimBody, finalizeBody, heartbeatBody, jobReportBody, releaseBody, runParams, runnerEventBody } from '../requestSchemas.ts';
import { errorResponses, ref } from '../responseSchemas.ts';

/**
 * The remote runner's side of the lifecycle, over HTTP: the same fenced SQL a worker uses.
 * Callable with the run's runner token (and by operators and admins). A GitHub runner token
 * (the repository's secret) may claim a run dispatched to its repository, receiving the run's
 * own runner token for everything after, and report its job's outcome.
 */

const tags = ['runner'];
/** A finalize body's largest size: an artifact of 100,000 files at about 300 bytes each fits. */
const FINALIZE_BODY_LIMIT = 32 * 1024 * 1024;
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
      config: { ...runnerRoute, githubRunner: true, optionalBody: true },
      schema: {
        tags,
        summary: 'Claim a queued or dispatched backup',
        description:
          'Starts the run with a new lease. Heartbeat every `heartbeatIntervalMs` with the returned `leaseId`; without one the lease expires after `leaseTtlMs` and the reaper ends the run. ' +
          "`target` says where to store and how to dump, never the database URL. Claimed with a GitHub runner token (only a run dispatched to its repository), the answer carries `runnerToken`, the run's own token: use it for every later call. " +
          'Verification drills run on workers, never here.',
        params: runParams,
        body: claimBody,
        response: {
          200: {
            type: 'object',
            required: ['leaseId', 'leaseTtlMs', 'heartbeatIntervalMs', 'leaseExpiresAt', 'deadlineAt', 'run', 'target'],
            properties: {
              leaseId: { type: 'string', format: 'uuid' },
              leaseTtlMs: { type: 'integer' },
              heartbeatIntervalMs: { type: 'integer' },
              leaseExpiresAt: { type: 'string', format: 'date-time' },
              deadlineAt: { type: 'string', format: 'date-time' },
              run: ref('Run'),
              target: ref('RunnerTarget'),
              runnerToken: { type: 'string', description: "Only when claimed with a GitHub runner token: this run's runner token, shown once." },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const principal = request.principal;
      const run = await getRun(ctx.pool, request.params.id);
      if (run.kind !== 'backup') {
        throw new BackstopError(
          'RUN_NOT_CLAIMABLE',
          `Run ${run.id} is a verification drill: drills restore into a scratch database next to the catalog and run on Backstop workers (\`backstop worker\`), not over HTTP.`,
        );
      }
      const byGithub = principal?.kind === 'github';
      if (byGithub && run.status === 'queued') {
        throw new BackstopError('RUN_NOT_CLAIMABLE', `Run ${run.id} is queued, not dispatched: a GitHub job may only claim the run Backstop dispatched to it.`);
      }
      const options = {
        leaseTtlMs: ctx.config.leaseTtlMs,
        claimedBy: runnerName(request, request.body?.claimedBy),
        // A repository's token takes only what Backstop handed to GitHub, checked in the claim itself.
        fromStatuses: byGithub ? (['dispatched'] as Array<'dispatched'>) : undefined,
      };
      // The claim and the run's own token commit together: a job never holds a lease it cannot use.
      const { claimed, runnerToken } = byGithub
        ? await withTransaction(ctx.pool, async (client) => {
            const claimed = await claimRunById(client, run.id, options);
            return { claimed, runnerToken: await issueRunnerToken(client, run.id) };
          })
        : { claimed: await claimRunById(ctx.pool, run.id, options), runnerToken: undefined };
      const target = await getTargetWithSecret(ctx.pool, claimed.targetId);
      if (byGithub) request.log.info({ runId: run.id, by: actorOf(request) }, 'run claimed by a GitHub job');
      return {
        leaseId: claimed.leaseId,
        leaseTtlMs: Math.round(ctx.config.leaseTtlMs),
        heartbeatIntervalMs: Math.round(ctx.config.heartbeatIntervalMs),
        leaseExpiresAt: claimed.leaseExpiresAt!,
        deadlineAt: claimed.deadlineAt,
        run: claimed,
        // An allow-list, so a secret added to targets later cannot leak through here.
        target: { id: target.id, name: target.name, storeUrl: target.storeUrl, options: target.options },
        ...(runnerToken ? { runnerToken } : {}),
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
      // A lost answer is retried with the same lease, after the run ended too.
      config: { ...runnerRoute, runnerAfterEnd: true },
      // The artifact lists every file: with Supabase Storage objects, tens of thousands.
      bodyLimit: FINALIZE_BODY_LIMIT,
      schema: {
        tags,
        summary: 'End the run',
        description:
          'Repeating the same finalize with the same lease succeeds; anything else on a finished run is 409 LEASE_LOST. ' +
          "A backup reported `succeeded` is read back from its target's store first: the artifact must be in the target's store under the prefix of this run and attempt, with the manifest, files, sizes and SHA-256 reported. " +
          'Anything else is 422 ARTIFACT_REJECTED, and the attempt is recorded as failed with the reason.',
        params: runParams,
        body: finalizeBody,
        response: { 200: ref('Run'), ...errorResponses },
      },
    },
    async (request) => {
      const { leaseId, outcome, error, artifact } = request.body;
      return finalizeReportedRun(ctx.pool, {
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

  app.post<{ Params: { id: string }; Body: { leaseId: string; reason: string } }>(
    '/api/v1/runs/:id/release',
    {
      config: runnerRoute,
      schema: {
        tags,
        summary: 'Hand the run back to the queue',
        description: 'For a runner shutting down before it could finish: the run is queued again for another runner. 409 LEASE_LOST when this lease no longer holds it.',
        params: runParams,
        body: releaseBody,
        response: { 200: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['queued'] } } }, ...errorResponses },
      },
    },
    async (request) => {
      const { leaseId, reason } = request.body;
      const released = await releaseRun(ctx.pool, { runId: request.params.id, leaseId, reason: `${reason} (${actorOf(request)})` });
      if (!released) await leaseLost(ctx, request.params.id);
      return { status: 'queued' };
    },
  );

  app.post<{ Params: { id: string }; Body: { jobStatus: JobStatus } }>(
    '/api/v1/runs/:id/report',
    {
      // The job's last step runs after the run step ended the run, and must find it ended.
      config: { ...runnerRoute, githubRunner: true, runnerAfterEnd: true },
      schema: {
        tags,
        summary: "End the run with its CI job's status, if the run step did not",
        description:
          "A CI job's last, `if: always()` step (`backstop report`). A finished run is left as it is (`ended: false`). Otherwise the job is over, so no runner can still hold the run: it ends at once, `cancelled` for a cancelled job and `failed` otherwise, with EXECUTOR_ENDED.",
        params: runParams,
        body: jobReportBody,
        response: {
          200: { type: 'object', required: ['ended', 'run'], properties: { ended: { type: 'boolean' }, run: ref('Run') } },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const result = await reportJobStatus(ctx.pool, request.params.id, request.body.jobStatus);
      if (result.ended)
        request.log.warn({ runId: request.params.id, jobStatus: request.body.jobStatus, by: actorOf(request) }, 'a CI job ended without the run step recording an outcome');
      return result;
    },
  );
}
