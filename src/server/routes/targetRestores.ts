import type { FastifyInstance } from 'fastify';
import { listRestores } from '../../operations/listRestores.ts';
import { pointInTimeRestoreRequest, preparePointInTimeRestore, type PointInTimeRestoreRequest } from '../../operations/pointInTimeRestore.ts';
import { describeRestorePoint } from '../../core/restorePoint.ts';
import { apiRestoreCaller, restoreInBackground } from '../apiRestore.ts';
import type { ServerContext } from '../context.ts';
import { targetParams } from '../requestSchemas.ts';
import { errorResponses } from '../responseSchemas.ts';
import { zodBody } from '../validation.ts';

const restore = {
  type: 'object',
  required: ['id', 'runId', 'status', 'startedAt', 'finishedAt', 'error'],
  properties: {
    id: { type: 'string' },
    runId: { type: 'string', format: 'uuid', description: 'The backup restored.' },
    status: { type: 'string', enum: ['running', 'restored', 'failed'] },
    startedAt: { type: ['string', 'null'], format: 'date-time' },
    finishedAt: { type: ['string', 'null'], format: 'date-time' },
    error: { anyOf: [{ type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } }, { type: 'null' }] },
    requestedBy: { type: ['string', 'null'], description: 'The token name that asked, for API restores.' },
    message: { type: ['string', 'null'], description: 'Where it restored into, or what went wrong.' },
  },
} as const;

export function registerTargetRestoreRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Params: { name: string } }>(
    '/api/v1/targets/:name/restores',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['targets'],
        summary: "A target's restore history, newest first",
        description:
          'From the events restores leave on the backups they restored: API restores (`restore_started`, then `restored` or `restore_failed`) and CLI restores of a run id (`restored`).',
        params: targetParams,
        response: {
          200: { type: 'object', required: ['target', 'items'], properties: { target: { type: 'string' }, items: { type: 'array', items: restore } } },
          ...errorResponses,
        },
      },
    },
    async (request) => listRestores(ctx.pool, request.params.name),
  );

  app.post<{ Params: { name: string }; Body: PointInTimeRestoreRequest }>(
    '/api/v1/targets/:name/restore',
    {
      config: { access: 'operator', audit: 'run.restore' },
      schema: {
        tags: ['targets'],
        summary: 'Restore a continuous target as it was at a point in time (in the background)',
        description:
          "`at` is `latest`, an LSN (`0/16B3748`: every transaction with commit LSN at or before it) or a time with its offset (`2026-12-06T12:30:00Z`). The newest base backup whose window holds the point is restored as by POST /api/v1/runs/{id}/restore, with the same destination rules (operators only into one of the target's `options.restoreTo`, else 403; a privileged destination role 403 `RESTORE_ROLE_PRIVILEGED` unless `privilegedRole` names it), then the change segments' transactions up to the point are replayed in one transaction. The segments are read and checked before the destination is touched. Answers 202 at once; progress and the result are events of the base backup's run (`restore_started`, then `restored` with `data.pointInTime` — the LSN and commit time reached, the transactions replayed — or `restore_failed`), listed in GET /api/v1/targets/{name}/restores. A point no window holds answers 409 `POINT_NOT_RESTORABLE` listing the windows (GET /api/v1/targets/{name}/window); a target with no base backup of continuity, 409 too; a malformed `at`, 400. See docs/CONTINUOUS.md.",
        params: targetParams,
        body: zodBody(pointInTimeRestoreRequest),
        response: {
          202: {
            type: 'object',
            required: ['target', 'runId', 'restoreId', 'status', 'at', 'base', 'message'],
            properties: {
              target: { type: 'string' },
              runId: { type: 'string', description: "The base backup restored first; the restore's events are on this run." },
              restoreId: { type: 'string', description: "Carried by this restore's events (`data.restoreId`) and its entry in the target's restore history." },
              status: { type: 'string', enum: ['started'] },
              at: { type: 'string', description: 'The point, as understood: `latest`, `LSN …` or the time given.' },
              base: {
                type: 'object',
                required: ['runId', 'lsn', 'segments'],
                properties: {
                  runId: { type: 'string' },
                  lsn: { type: 'string', description: "The base backup's consistent LSN: transactions from there on are replayed." },
                  segments: { type: 'integer', description: 'Change segments the replay reads.' },
                },
              },
              message: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const log = request.log.child({ target: request.params.name });
      const restore = await preparePointInTimeRestore({ db: ctx.pool, config: ctx.config, log }, request.params.name, request.body, apiRestoreCaller(request));
      const runId = restore.runId!;
      restoreInBackground(
        ctx.tasks,
        `point-in-time restore of ${restore.target}`,
        (signal) => restore.execute({ signal }),
        log,
        (outcome) => ({
          reachedLsn: outcome.pointInTime.reachedLsn,
        }),
      );
      const at = describeRestorePoint(restore.point);
      return reply.code(202).send({
        target: restore.target,
        runId,
        restoreId: restore.restoreId,
        status: 'started',
        at,
        base: { runId, lsn: restore.plan.window.base.baseLsn, segments: restore.plan.segments.length },
        message: `Restoring ${restore.target} to ${at} into ${restore.destination}, from base backup ${runId}. Follow GET /api/v1/runs/${runId}/events for the result.`,
      });
    },
  );
}
