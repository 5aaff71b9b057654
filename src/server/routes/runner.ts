import type { FastifyInstance, FastifyRequest } from 'fastify';
import { finalizeReportedRun } from '../../control/finalizeReportedRun.ts';
import { claimForRunner, claimRequest, type ClaimRequest } from '../../operations/claimForRunner.ts';
import { finalizeInputOf, finalizeRequest, type FinalizeRequest } from '../../operations/finalizeRequest.ts';
import { handBack, handBackRequest, type HandBackRequest } from '../../operations/handBack.ts';
import { heartbeat, heartbeatRequest, type HeartbeatRequest } from '../../operations/heartbeat.ts';
import { recordRunnerEvent, runnerEventRequest, type RunnerEventRequest } from '../../operations/recordRunnerEvent.ts';
import { progressRequest, reportProgress, type ProgressRequest } from '../../operations/reportProgress.ts';
import { jobReportRequest, reportJobStatus, type JobReportRequest } from '../../operations/reportJobStatus.ts';
import { actorOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { runParams } from '../requestSchemas.ts';
import { zodBody, zodJsonSchema } from '../validation.ts';
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
/** Who claimed, when the runner does not say: the token's holder and address. */
function runnerName(request: FastifyRequest): string {
  return `remote ${actorOf(request)} from ${request.ip}`;
}

export function registerRunnerRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Params: { id: string }; Body: ClaimRequest }>(
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
        body: zodBody(claimRequest),
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
              previousBackupBytes: {
                type: ['number', 'null'],
                description: "The plain size of the target's newest succeeded backup: what the runner reports this backup's progress against.",
              },
              runnerToken: { type: 'string', description: "Only when claimed with a GitHub runner token: this run's runner token, shown once." },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const byGithub = request.principal?.kind === 'github';
      const claim = await claimForRunner(ctx.pool, ctx.config, request.params.id, request.body, { byGithub, defaultName: runnerName(request) });
      if (byGithub) request.log.info({ runId: claim.run.id, by: actorOf(request) }, 'run claimed by a GitHub job');
      return claim;
    },
  );

  app.post<{ Params: { id: string }; Body: HeartbeatRequest }>(
    '/api/v1/runs/:id/heartbeat',
    {
      config: runnerRoute,
      schema: {
        tags,
        summary: 'Extend the lease and report progress',
        description: '409 LEASE_LOST means the run was reaped, finished or claimed again: stop at once. `cancelRequested` asks the runner to stop and finalize as cancelled.',
        params: runParams,
        body: zodBody(heartbeatRequest),
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
    async (request) => heartbeat(ctx.pool, ctx.config, request.params.id, request.body),
  );

  app.post<{ Params: { id: string }; Body: ProgressRequest }>(
    '/api/v1/runs/:id/progress',
    {
      config: runnerRoute,
      schema: {
        tags,
        summary: 'Report progress between heartbeats',
        description:
          'About once a second while bytes move: the run (and its event stream) shows it at once, where a heartbeat comes every third of the lease. Leaves the lease alone. 409 LEASE_LOST when this lease no longer holds the run.',
        params: runParams,
        body: zodBody(progressRequest),
        response: { 204: { type: 'null', description: 'Recorded.' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await reportProgress(ctx.pool, request.params.id, request.body);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string }; Body: FinalizeRequest }>(
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
        body: zodJsonSchema(finalizeRequest),
        response: { 200: ref('Run'), ...errorResponses },
      },
    },
    async (request) => finalizeReportedRun(ctx.pool, finalizeInputOf(request.params.id, request.body)),
  );

  app.post<{ Params: { id: string }; Body: RunnerEventRequest }>(
    '/api/v1/runs/:id/events',
    {
      config: runnerRoute,
      schema: {
        tags,
        summary: 'Record an event of the run',
        description: 'Accepted only while the lease holds.',
        params: runParams,
        body: zodBody(runnerEventRequest),
        response: { 204: { type: 'null', description: 'Recorded.' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await recordRunnerEvent(ctx.pool, request.params.id, request.body);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string }; Body: HandBackRequest }>(
    '/api/v1/runs/:id/release',
    {
      config: runnerRoute,
      schema: {
        tags,
        summary: 'Hand the run back to the queue',
        description: 'For a runner shutting down before it could finish: the run is queued again for another runner. 409 LEASE_LOST when this lease no longer holds it.',
        params: runParams,
        body: zodBody(handBackRequest),
        response: { 200: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['queued'] } } }, ...errorResponses },
      },
    },
    async (request) => handBack(ctx.pool, request.params.id, request.body, actorOf(request)),
  );

  app.post<{ Params: { id: string }; Body: JobReportRequest }>(
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
        body: zodBody(jobReportRequest),
        response: {
          200: { type: 'object', required: ['ended', 'run'], properties: { ended: { type: 'boolean' }, run: ref('Run') } },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const result = await reportJobStatus(ctx.pool, request.params.id, request.body);
      if (result.ended)
        request.log.warn({ runId: request.params.id, jobStatus: request.body.jobStatus, by: actorOf(request) }, 'a CI job ended without the run step recording an outcome');
      return result;
    },
  );
}
