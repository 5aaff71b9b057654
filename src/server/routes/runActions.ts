import type { FastifyInstance } from 'fastify';
import { prepareRestore } from '../../operations/prepareRestore.ts';
import { queueDrill } from '../../operations/queueDrill.ts';
import { restoreRequest, type RestoreRequest } from '../../operations/restoreRequest.ts';
import { apiRestoreCaller, restoreInBackground } from '../apiRestore.ts';
import { actorOf, requestActor } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { runParams } from '../requestSchemas.ts';
import { zodBody } from '../validation.ts';
import { errorResponses, ref } from '../responseSchemas.ts';

export function registerRunActionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Params: { id: string }; Body: RestoreRequest }>(
    '/api/v1/runs/:id/restore',
    {
      config: { access: 'operator', audit: 'run.restore' },
      schema: {
        tags: ['runs'],
        summary: 'Restore a backup into a database (in the background)',
        description:
          "Checks the artifact against its manifest, runs pg_restore and compares row counts. Answers 202 at once; progress and the result are events of the run (`restore_started`, then `restored` or `restore_failed`). Admins restore into any database; operators only into one the target's `options.restoreTo` lists (`HOST:PORT/DATABASE`, `*` for any part), else 403. A destination that cannot be reached fails with a generic message (the details go to the server log only). A destination role that is a superuser, has CREATEROLE or is a member of pg_execute_server_program, pg_write_server_files or pg_read_server_files (or of a superuser or CREATEROLE role) is refused with 403 `RESTORE_ROLE_PRIVILEGED` unless `privilegedRole` names it: the backup's code runs as that role.",
        params: runParams,
        body: zodBody(restoreRequest),
        response: {
          202: {
            type: 'object',
            required: ['runId', 'restoreId', 'status', 'message'],
            properties: {
              runId: { type: 'string' },
              restoreId: { type: 'string', description: "Carried by this restore's events (`data.restoreId`) and its entry in the target's restore history." },
              status: { type: 'string', enum: ['started'] },
              message: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const log = request.log.child({ runId: request.params.id });
      const restore = await prepareRestore({ db: ctx.pool, config: ctx.config, log }, request.params.id, request.body, apiRestoreCaller(request));
      restoreInBackground(ctx.tasks, `restore of ${restore.runId}`, (signal) => restore.execute({ signal }), log);
      return reply.code(202).send({
        runId: restore.runId,
        restoreId: restore.restoreId,
        status: 'started',
        message: `Restoring run ${restore.runId} into ${restore.destination}; follow GET /api/v1/runs/${restore.runId}/events for the result.`,
      });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/runs/:id/verify',
    {
      config: { access: 'operator', audit: 'run.verify' },
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
      const { run } = await queueDrill(ctx.pool, ctx.config, { runId: request.params.id }, { trigger: 'api', actor: requestActor(request) });
      request.log.info({ runId: run.id, subjectRunId: run.subjectRunId, by: actorOf(request) }, 'verification queued');
      return reply.code(201).send(run);
    },
  );
}
