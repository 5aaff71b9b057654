import type { FastifyInstance, FastifyRequest } from 'fastify';
import { describeDatabase, parseDatabaseUrl, redactText } from '../../core/databaseUrl.ts';
import { BackstopError, describeError, isBackstopError } from '../../core/errors.ts';
import { formatRestoreDestination, restoreDestinationOf, restoreToAllows } from '../../core/restoreDestination.ts';
import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { appendRunEvent } from '../../db/runEvents.ts';
import { createRun, getRun, type RunRecord } from '../../db/runRecords.ts';
import { getTargetWithSecret } from '../../db/targets.ts';
import { parseIdentities, type AgeIdentity } from '../../pipeline/age.ts';
import { readRunManifest } from '../../pipeline/readRunManifest.ts';
import { privilegeReasons, privilegesOf } from '../../pipeline/rolePrivileges.ts';
import { restoreArtifact } from '../../pipeline/restore.ts';
import { openStore } from '../../storage/openStore.ts';
import { actorOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { restoreBody, runParams } from '../requestSchemas.ts';
import { errorResponses, ref } from '../responseSchemas.ts';

interface RestoreBody {
  databaseUrl: string;
  clean: boolean;
  jobs: number;
  noOwner: boolean;
  identity?: string;
  privilegedRole?: string;
}

function backupToUse(run: RunRecord, action: string): RunRecord & { artifact: NonNullable<RunRecord['artifact']> } {
  if (run.kind !== 'backup' || run.status !== 'succeeded' || !run.artifact) {
    throw new BackstopError(
      'INVALID_INPUT',
      `Run ${run.id} is ${run.kind === 'backup' ? run.status : 'a verification drill'}; only a succeeded backup can be ${action}. List them with GET /api/v1/runs?status=succeeded&kind=backup.`,
    );
  }
  return run as RunRecord & { artifact: NonNullable<RunRecord['artifact']> };
}

/**
 * Admins restore anywhere; anyone else only into a destination the target's `restoreTo` list
 * names, so the API is no client of arbitrary hosts and ports.
 */
async function assertRestoreAllowed(ctx: ServerContext, request: FastifyRequest, run: RunRecord, databaseUrl: string): Promise<void> {
  const principal = request.principal;
  if (principal?.kind === 'api' && principal.role === 'admin') return;
  const destination = restoreDestinationOf(databaseUrl);
  const target = await getTargetWithSecret(ctx.pool, run.targetId);
  const allowed = Array.isArray(target.options.restoreTo) ? (target.options.restoreTo as string[]) : [];
  if (restoreToAllows(allowed, destination)) return;
  throw new BackstopError(
    'FORBIDDEN',
    `${formatRestoreDestination(destination)} is not in the restore destinations of target "${target.name}": an operator restores only into one its options.restoreTo lists (HOST:PORT/DATABASE, * for any part). Ask an admin to add it (PATCH /api/v1/targets/${target.name}) or to run this restore.`,
  );
}

/**
 * pg_restore runs the backup's code (CHECKs, defaults, index expressions) as the destination
 * URL's role, and a backup is what its source database's owner made it. A role that could run
 * programs or read files on the destination server is refused unless the request names it.
 */
async function assertRestoreRoleAccepted(databaseUrl: string, privilegedRole: string | undefined): Promise<void> {
  const client = await connectDatabase(databaseUrl);
  try {
    const role = await privilegesOf(client);
    const reasons = privilegeReasons(role);
    if (reasons.length === 0 || privilegedRole === role.name) return;
    throw new BackstopError(
      'RESTORE_ROLE_PRIVILEGED',
      `The restore destination connects as "${role.name}", which is ${reasons.join(', ')}: pg_restore runs the backup's code (CHECKs, defaults, index expressions) as that role, so whoever owned objects in the source database could run programs and read files on the destination server. ` +
        `Restore with a role that owns the destination database and nothing more (CREATE ROLE app_restore LOGIN PASSWORD '…'; CREATE DATABASE app_restored OWNER app_restore), ` +
        `or accept this role by passing "privilegedRole": ${JSON.stringify(role.name)} in the request.`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/** What viewers read when the destination did not answer: never the destination server's own words. */
function restoreFailureMessage(code: string, message: string, destination: string): string {
  if (code === 'DATABASE_UNREACHABLE') {
    return `could not connect to the restore destination (${destination}); check its host, port, database and credentials. The server log has the details.`;
  }
  return redactText(message);
}

export function registerRunActionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Params: { id: string }; Body: RestoreBody }>(
    '/api/v1/runs/:id/restore',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['runs'],
        summary: 'Restore a backup into a database (in the background)',
        description:
          "Checks the artifact against its manifest, runs pg_restore and compares row counts. Answers 202 at once; progress and the result are events of the run (`restore_started`, then `restored` or `restore_failed`). Admins restore into any database; operators only into one the target's `options.restoreTo` lists (`HOST:PORT/DATABASE`, `*` for any part), else 403. A destination that cannot be reached fails with a generic message (the details go to the server log only). A destination role that is a superuser, has CREATEROLE or is a member of pg_execute_server_program, pg_write_server_files or pg_read_server_files (or of a superuser or CREATEROLE role) is refused with 403 `RESTORE_ROLE_PRIVILEGED` unless `privilegedRole` names it: the backup's code runs as that role.",
        params: runParams,
        body: restoreBody,
        response: {
          202: {
            type: 'object',
            required: ['runId', 'status', 'message'],
            properties: { runId: { type: 'string' }, status: { type: 'string', enum: ['started'] }, message: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      parseDatabaseUrl(body.databaseUrl);
      const identities: AgeIdentity[] | undefined = body.identity === undefined ? undefined : parseIdentities(body.identity);
      const run = backupToUse(await getRun(ctx.pool, request.params.id), 'restored');
      await assertRestoreAllowed(ctx, request, run, body.databaseUrl);
      // Checked before answering, so the refusal is the answer. A destination that does not
      // answer now is checked again by the restore itself, which reports it in generic words.
      let roleChecked = false;
      try {
        await assertRestoreRoleAccepted(body.databaseUrl, body.privilegedRole);
        roleChecked = true;
      } catch (error) {
        if (isBackstopError(error, 'RESTORE_ROLE_PRIVILEGED')) throw error;
        request.log.info({ err: error }, 'restore destination not checked before starting');
      }
      const destination = describeDatabase(body.databaseUrl);
      await appendRunEvent(ctx.pool, {
        runId: run.id,
        kind: 'restore_started',
        message: `restoring into ${destination} (${actorOf(request)})`,
        data: { clean: body.clean, jobs: body.jobs },
      });
      const log = request.log.child({ runId: run.id });
      ctx.tasks.start(`restore of ${run.id}`, async (signal) => {
        const started = performance.now();
        try {
          if (!roleChecked) await assertRestoreRoleAccepted(body.databaseUrl, body.privilegedRole);
          const store = await openStore(run.artifact.storeUrl);
          try {
            const { manifest } = await readRunManifest(store, run);
            const result = await restoreArtifact({
              store,
              prefix: run.artifact.prefix,
              manifest,
              toUrl: body.databaseUrl,
              clean: body.clean,
              jobs: body.jobs,
              noOwner: body.noOwner,
              identities,
              pgTools: ctx.config.pgTools,
              signal,
            });
            const elapsedMs = Math.round(performance.now() - started);
            await appendRunEvent(ctx.pool, {
              runId: run.id,
              kind: 'restored',
              message: `restored into ${destination}`,
              data: { tablesChecked: result.tablesChecked, bytesRestored: result.bytesRestored, elapsedMs },
            });
            log.info({ elapsedMs }, 'restore finished');
          } finally {
            await store.close();
          }
        } catch (error) {
          const described = describeError(error);
          log.warn({ err: error }, 'restore failed');
          await appendRunEvent(ctx.pool, {
            runId: run.id,
            kind: 'restore_failed',
            message: restoreFailureMessage(described.code, described.message, destination),
            data: { code: signal.aborted ? 'CANCELLED' : described.code },
          });
        }
      });
      return reply.code(202).send({
        runId: run.id,
        status: 'started',
        message: `Restoring run ${run.id} into ${destination}; follow GET /api/v1/runs/${run.id}/events for the result.`,
      });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/runs/:id/verify',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['runs'],
        summary: 'Verify a backup with a restore drill',
        description:
          'Queues a verification run (kind `verify`) of this succeeded backup: stored digests are checked, the backup is restored into a scratch database and row counts (and checksums, when recorded) are compared. A worker executes it; the result is recorded on both runs.',
        params: runParams,
        response: { 201: ref('Run'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const subject = backupToUse(await getRun(ctx.pool, request.params.id), 'verified');
      const run = await createRun(ctx.pool, {
        targetId: subject.targetId,
        trigger: 'api',
        runDeadlineMs: ctx.config.runDeadlineMs,
        kind: 'verify',
        subjectRunId: subject.id,
      });
      request.log.info({ runId: run.id, subjectRunId: subject.id, by: actorOf(request) }, 'verification queued');
      return reply.code(201).send(run);
    },
  );
}
