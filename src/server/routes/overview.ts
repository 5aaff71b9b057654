import type { FastifyInstance } from 'fastify';
import { runStatuses } from '../../core/runState.ts';
import { backupHistory, backupHistoryQuery, type BackupHistoryQuery } from '../../operations/backupHistory.ts';
import { overview } from '../../operations/overview.ts';
import { runKinds } from '../../operations/runRecord.ts';
import type { ServerContext } from '../context.ts';
import { targetParams } from '../requestSchemas.ts';
import { zodJsonSchema } from '../validation.ts';
import { errorResponses, nullable, runProgressView, uuid } from '../responseSchemas.ts';

const dateTime = { type: 'string', format: 'date-time' } as const;
const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const;

const runBrief = nullable({
  type: 'object',
  required: ['id', 'kind', 'status', 'createdAt'],
  properties: {
    id: uuid,
    kind: { type: 'string', enum: runKinds },
    status: { type: 'string', enum: runStatuses },
    createdAt: dateTime,
    startedAt: nullableDateTime,
    finishedAt: nullableDateTime,
    error: nullable({ type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } }),
    bytes: { type: ['integer', 'null'], description: 'Stored bytes of the artifact (files and manifest).' },
    subjectRunId: { type: ['string', 'null'], description: 'For a restore drill: the backup it restored.' },
    progress: { ...nullable(runProgressView), description: 'While the run has not finished: its progress (see the Run schema).' },
  },
});

const targetSummary = {
  type: 'object',
  required: ['name', 'health', 'healthReason', 'schedule', 'nextScheduledAt', 'lastRun', 'activeRun', 'newestBackup', 'lastVerification'],
  properties: {
    name: { type: 'string' },
    health: {
      type: 'string',
      enum: ['ok', 'failing', 'stale', 'never'],
      description: 'failing: the last backup (or restore drill) failed or timed out; stale: scheduled, but no good backup since the slot before the latest; never: no good backup yet.',
    },
    healthReason: { type: 'string', description: 'The health in plain words.' },
    schedule: nullable({ type: 'object', required: ['cron', 'timezone'], properties: { cron: { type: 'string' }, timezone: { type: 'string' } } }),
    executor: { type: 'string', enum: ['worker', 'github'] },
    nextScheduledAt: { ...nullableDateTime, description: 'The next schedule slot (database clock), null without a schedule.' },
    lastRun: { ...runBrief, description: 'The newest backup run, whatever its status.' },
    activeRun: { ...runBrief, description: 'A backup queued or in progress.' },
    newestBackup: { ...runBrief, description: 'The newest succeeded backup still kept.' },
    newestBackupAgeSeconds: { type: ['number', 'null'], description: 'Age of the newest good backup, by the database clock.' },
    lastVerification: { ...runBrief, description: 'The newest restore drill that ended.' },
    alarms: { type: 'array', items: { $ref: 'Alarm#' }, description: 'Alarms active now.' },
  },
} as const;

const historyPoint = {
  type: 'object',
  required: ['runId', 'status', 'createdAt', 'finishedAt', 'durationSeconds', 'bytes'],
  properties: {
    runId: uuid,
    status: { type: 'string', enum: runStatuses },
    createdAt: dateTime,
    finishedAt: dateTime,
    durationSeconds: { type: ['number', 'null'], description: 'From start to finish; null when the run never started.' },
    bytes: { type: ['integer', 'null'], description: 'Stored bytes of a succeeded backup.' },
    dumpedBytes: { type: ['number', 'null'], description: 'Bytes pg_dump produced, before compression.' },
    errorCode: { type: ['string', 'null'] },
  },
} as const;

export function registerOverviewRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/api/v1/overview',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['targets'],
        summary: 'Every target at a glance',
        description: 'Per target: its health, last run, the backup in progress, the newest good backup and its age, the last restore drill and the next scheduled run.',
        response: {
          200: { type: 'object', required: ['now', 'items'], properties: { now: dateTime, items: { type: 'array', items: targetSummary } } },
          ...errorResponses,
        },
      },
    },
    async () => overview(ctx.pool),
  );

  app.get<{ Params: { name: string }; Querystring: BackupHistoryQuery }>(
    '/api/v1/targets/:name/history',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['targets'],
        summary: 'Size and duration of a target’s finished backups, oldest first',
        description: 'The newest `limit` finished backup runs (any outcome), for charts.',
        params: targetParams,
        querystring: zodJsonSchema(backupHistoryQuery),
        response: {
          200: { type: 'object', required: ['target', 'items'], properties: { target: { type: 'string' }, items: { type: 'array', items: historyPoint } } },
          ...errorResponses,
        },
      },
    },
    async (request) => backupHistory(ctx.pool, request.params.name, request.query),
  );
}
