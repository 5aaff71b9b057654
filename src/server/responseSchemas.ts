import { z } from 'zod';
import { runProgressSchema } from '../core/runProgress.ts';
import { apiTokenRoles } from '../operations/createApiToken.ts';
import { reportedArtifact } from '../operations/reportedArtifact.ts';
import { runKinds, runStatuses } from '../core/runState.ts';
import { alarmKinds } from '../core/alarms.ts';
import { zodJsonSchema } from './validation.ts';

/**
 * Response schemas of the API. They serialize responses as an allow-list (a field not listed
 * here never leaves the server: the second line of defence for secrets) and, registered with
 * addSchema, appear by name in /api/openapi.json. See requestSchemas.ts for what is accepted.
 */

export const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: 'null' }] });
export const uuid = { type: 'string', format: 'uuid' } as const;
const dateTime = { type: 'string', format: 'date-time' } as const;
const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const;
const freeObject = { type: 'object', additionalProperties: true } as const;

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  description:
    'Every error response. `code` is stable (see src/core/errors.ts); `message` says what to do next. `field` names the input field at fault (`databaseUrl`, `options.encryptTo.0`); an input that failed validation lists every problem in `fields`.',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        field: { type: 'string', description: 'The request field at fault (a dotted path such as `options.encryptTo.0`), when one is.' },
        fields: {
          type: 'array',
          description: 'Every field at fault, when there are several, each with its own message.',
          items: { type: 'object', required: ['field', 'message'], properties: { field: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
  },
} as const;

/** An artifact as the catalog records it: what a remote runner sends to finalize, checked by the same rules. */
export const artifactBody = zodJsonSchema(reportedArtifact);

const actionVerdict = {
  type: 'object',
  required: ['allowed'],
  properties: {
    allowed: { type: 'boolean' },
    blockedBy: { type: 'string', enum: ['role', 'state', 'identity'], description: "Why not: the caller's role, the run's or target's state, or no age identity to decrypt with." },
    reason: { type: 'string', description: 'Why not, in plain words.' },
    identityRequired: { type: 'boolean', description: 'Restore: the backup is encrypted and the server holds no identity, so the request must send one.' },
  },
} as const;

const actionsOf = (names: readonly string[], description: string) => ({
  type: 'object',
  description,
  required: names,
  properties: Object.fromEntries(names.map((name) => [name, actionVerdict])),
});

export const runActionNames = ['cancel', 'verify', 'restore', 'download'] as const;
export const targetActionNames = ['backup', 'verifyNewest', 'restoreNewest', 'restorePointInTime', 'test', 'edit', 'pause', 'delete', 'testNotification'] as const;

const { $schema: _draft, ...reportedProgress } = z.toJSONSchema(runProgressSchema) as { $schema: string; properties: Record<string, unknown> };

/** Live progress, from the schema runners' reports are parsed with (src/core/runProgress.ts). */
export const runProgressView = {
  ...reportedProgress,
  description:
    "The run's backup or drill as it goes (or as it ended), or a restore of its backup while one runs (operation `restore`). Written by whatever does the work about once a second.",
  properties: { ...reportedProgress.properties, updatedAt: { ...dateTime, description: 'When the catalog recorded it (its clock).' } },
};

export const runSchema = {
  $id: 'Run',
  type: 'object',
  description: 'A backup run or a verification drill. Times are the catalog database clock.',
  required: ['id', 'kind', 'targetId', 'targetName', 'status', 'trigger', 'attempt', 'maxAttempts', 'deadlineAt', 'createdAt'],
  properties: {
    id: uuid,
    kind: { type: 'string', enum: runKinds },
    subjectRunId: { type: ['string', 'null'], description: 'For a verification: the backup run it verifies.' },
    targetId: uuid,
    targetName: { type: 'string' },
    status: { type: 'string', enum: runStatuses },
    trigger: { type: 'string' },
    attempt: { type: 'integer' },
    maxAttempts: { type: 'integer' },
    leaseExpiresAt: nullableDateTime,
    heartbeatAt: nullableDateTime,
    claimedBy: { type: ['string', 'null'] },
    startDeadlineAt: nullableDateTime,
    deadlineAt: dateTime,
    cancelRequestedAt: nullableDateTime,
    createdAt: dateTime,
    startedAt: nullableDateTime,
    finishedAt: nullableDateTime,
    error: nullable({
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    }),
    progress: nullable(runProgressView),
    artifact: nullable(artifactBody),
    executor: nullable(freeObject),
    verification: nullable(freeObject),
    actions: actionsOf(runActionNames, 'What the caller may do with this run now, and why not (GET /api/v1/runs/{id} only): the same rules the acting routes apply.'),
  },
} as const;

export const runEventSchema = {
  $id: 'RunEvent',
  type: 'object',
  required: ['id', 'runId', 'at', 'attempt', 'kind'],
  properties: {
    id: { type: 'integer', description: 'Increasing; the SSE event id.' },
    runId: uuid,
    at: dateTime,
    attempt: { type: 'integer' },
    kind: { type: 'string' },
    status: { type: ['string', 'null'] },
    message: { type: ['string', 'null'] },
    data: nullable(freeObject),
  },
} as const;

const scheduleView = {
  type: 'object',
  required: ['cron', 'timezone'],
  properties: { cron: { type: 'string' }, timezone: { type: 'string' } },
} as const;

/** How a target is dumped and stored (no secret in it). */
const targetOptionsView = {
  type: 'object',
  properties: {
    compression: { type: 'string' },
    encryptTo: { type: 'array', items: { type: 'string' } },
    profile: { type: 'string' },
    checksums: { type: 'boolean' },
    withStorage: { type: 'boolean' },
    server: {
      type: 'object',
      description: 'The server profile: which databases and globals a backup takes.',
      properties: {
        databases: { type: 'array', items: { type: 'string' } },
        excludeDatabases: { type: 'array', items: { type: 'string' } },
        globals: { type: 'string' },
        jobs: { type: 'integer' },
      },
    },
  },
} as const;

export const alarmSchema = {
  $id: 'Alarm',
  type: 'object',
  description: 'An alarm active now: something that should have happened did not (see the README, Alarms).',
  required: ['id', 'targetId', 'targetName', 'kind', 'since', 'what', 'whatToDo', 'raisedAt', 'lastSentAt', 'sentCount', 'clearedAt'],
  properties: {
    id: { type: 'integer' },
    targetId: uuid,
    targetName: { type: 'string' },
    kind: { type: 'string', enum: alarmKinds },
    since: { ...dateTime, description: 'When the condition began.' },
    what: { type: 'string' },
    whatToDo: { type: 'string' },
    raisedAt: dateTime,
    lastSentAt: dateTime,
    sentCount: { type: 'integer', description: 'Messages sent: the first and its repeats.' },
    clearedAt: nullableDateTime,
  },
} as const;

/** A channel's settings without its secrets: those are named in `secretsSet`, never shown. */
export const channelSettingsViewSchema = {
  type: 'object',
  description: "A channel's settings but its secrets (url, secret, token, botToken, password), which are write-only: `secretsSet` says which are stored.",
  required: ['kind', 'secretsSet'],
  properties: {
    kind: { type: 'string' },
    chatId: { type: 'string' },
    apiUrl: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'integer' },
    security: { type: 'string' },
    username: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'array', items: { type: 'string' } },
    secretsSet: { type: 'array', items: { type: 'string' } },
  },
} as const;

export const channelHealthSchema = {
  type: 'object',
  description: 'How deliveries to the channel are going. `failingSince` set: it is failing (its last attempt failed), since then.',
  required: ['lastDeliveredAt', 'failingSince', 'failures', 'lastError', 'lastErrorAt'],
  properties: {
    lastDeliveredAt: nullableDateTime,
    failingSince: nullableDateTime,
    failures: { type: 'integer', description: 'Failed attempts in a row.' },
    lastError: { type: ['string', 'null'], description: 'What went wrong last (never a URL or secret).' },
    lastErrorAt: nullableDateTime,
  },
} as const;

export const sharedChannelSchema = {
  $id: 'Channel',
  type: 'object',
  description: 'A shared notification channel: targets use it by name. Its secrets are write-only.',
  required: ['id', 'name', 'kind', 'settings', 'usedBy', 'health', 'createdAt', 'updatedAt'],
  properties: {
    id: uuid,
    name: { type: 'string' },
    kind: { type: 'string' },
    settings: channelSettingsViewSchema,
    usedBy: { type: 'array', items: { type: 'string' }, description: 'The targets that use it.' },
    health: channelHealthSchema,
    createdAt: dateTime,
    updatedAt: dateTime,
  },
} as const;

const windowPoint = { type: 'object', required: ['at', 'lsn'], properties: { at: dateTime, lsn: { type: 'string' }, runId: uuid } } as const;

/** The restorable window of a continuous target (src/core/restoreWindow.ts). */
export const restoreWindowSchema = {
  type: 'object',
  required: ['from', 'to', 'ranges', 'rpoSeconds', 'limits'],
  properties: {
    from: { ...nullable(windowPoint), description: 'The earliest restorable second (the oldest stored base backup), or null while none is stored.' },
    to: { ...nullable(windowPoint), description: 'The latest restorable second: the newest durably stored commit reachable from a base backup.' },
    ranges: {
      type: 'array',
      description: 'The restorable spans, oldest first; more than one when gaps split the window.',
      items: { type: 'object', required: ['from', 'to'], properties: { from: windowPoint, to: windowPoint } },
    },
    rpoSeconds: { type: ['integer', 'null'], description: 'Seconds since the newest durably stored commit.' },
    limits: {
      type: 'array',
      description:
        'What limits the window, each with `kind` (no_base, gap, unprotected_tables, schema_change, stream_stopped, starting, rpo, base_only), a `message`, and the facts of its kind (schema_change: `clearedBy`, the first base backup taken after the change, from which later points restore without crossing it, or null).',
      items: { ...freeObject, required: ['kind', 'message'], properties: { kind: { type: 'string' }, message: { type: 'string' } } },
    },
  },
} as const;

const unprotectedTableSchema = {
  type: 'object',
  required: ['schema', 'table', 'reason', 'fix'],
  properties: { schema: { type: 'string' }, table: { type: 'string' }, reason: { type: 'string' }, fix: { type: 'string' } },
} as const;

/** A target's continuity: its stream's state, the tables left out, the window. */
export const continuitySchema = {
  type: 'object',
  required: ['slot', 'publication', 'state', 'unprotectedTables', 'recoveryPoint', 'rpoSeconds', 'maxRpoSeconds', 'window'],
  properties: {
    slot: { type: 'string' },
    publication: { type: 'string' },
    state: { type: 'string', enum: ['starting', 'streaming', 'stopped'] },
    stoppedReason: { type: ['string', 'null'] },
    stoppedAt: nullableDateTime,
    confirmedLsn: { type: ['string', 'null'] },
    retainedWalBytes: { type: ['integer', 'null'] },
    unprotectedTables: { type: 'array', items: unprotectedTableSchema, description: 'Tables not continuously protected, each with why and the fix.' },
    recoveryPoint: {
      ...dateTime,
      description: 'The newest instant before which every commit is stored: the later of the newest stored commit and the last time the streamer was caught up.',
    },
    rpoSeconds: {
      type: 'integer',
      description: 'Now minus the recovery point: what /metrics reports as backstop_continuous_rpo_seconds and `rpo_exceeded` compares with maxRpoSeconds.',
    },
    maxRpoSeconds: { type: 'integer', description: 'The bound past which `rpo_exceeded` is raised.' },
    window: restoreWindowSchema,
  },
} as const;

const continuousSettingsSchema = {
  type: 'object',
  required: ['slot', 'tables', 'segmentSeconds', 'segmentBytes', 'slotWarnBytes', 'slotLimitBytes', 'maxRpoSeconds'],
  properties: {
    slot: { type: 'string', description: 'The replication slot and the publication, both of this name.' },
    tables: { type: ['array', 'null'], items: { type: 'string' }, description: 'The tables followed (`schema.table`); null: every table it can follow safely.' },
    segmentSeconds: { type: 'integer' },
    segmentBytes: { type: 'integer' },
    slotWarnBytes: { type: 'integer' },
    slotLimitBytes: { type: 'integer' },
    maxRpoSeconds: { type: 'integer' },
  },
} as const;

export const targetSchema = {
  $id: 'Target',
  type: 'object',
  description: 'A database to back up. Its database URL and notification URLs and secrets are write-only.',
  required: ['id', 'name', 'storeUrl', 'options', 'exclusive', 'maxAttempts', 'notifications', 'paused', 'database', 'createdAt', 'updatedAt'],
  properties: {
    id: uuid,
    name: { type: 'string' },
    storeUrl: { type: 'string' },
    paused: { type: 'boolean', description: 'No scheduled backups or drills while paused; manual runs still work.' },
    database: {
      ...nullable({
        type: 'object',
        required: ['host', 'port', 'database', 'user'],
        properties: { host: { type: 'string' }, port: { type: ['integer', 'null'] }, database: { type: 'string' }, user: { type: ['string', 'null'] } },
      }),
      description: 'Which database it backs up, from its URL (never the password or query parameters); null for a target made by an import, which has no URL yet.',
    },
    // Only admins and operators need the restore destinations; runners get the plain view.
    options: { ...targetOptionsView, properties: { ...targetOptionsView.properties, restoreTo: { type: 'array', items: { type: 'string' } } } },
    exclusive: { type: 'boolean' },
    maxAttempts: { type: 'integer' },
    schedule: nullable(scheduleView),
    retention: nullable({
      type: 'object',
      properties: { keepLast: { type: 'integer' }, daily: { type: 'integer' }, weekly: { type: 'integer' }, monthly: { type: 'integer' } },
    }),
    verification: nullable({
      type: 'object',
      properties: {
        everyNth: { type: 'integer' },
        cron: { type: 'string' },
        timezone: { type: 'string' },
        checksums: { type: 'boolean' },
      },
    }),
    notifications: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'kind', 'on', 'signed'],
        properties: {
          id: { type: 'string' },
          kind: { type: 'string', description: 'webhook, slack, email, discord, telegram, teams, ntfy, or shared (a shared channel, named by `channel`).' },
          on: { type: 'array', items: { type: 'string' } },
          signed: { type: 'boolean', description: 'Whether deliveries are signed with a secret (the secret is never shown).' },
          channel: { type: 'string', description: 'kind shared: the shared channel it uses.' },
          settings: channelSettingsViewSchema,
          health: channelHealthSchema,
        },
      },
    },
    executor: nullable({
      type: 'object',
      properties: {
        kind: { type: 'string' },
        owner: { type: 'string' },
        repo: { type: 'string' },
        workflow: { type: 'string' },
        ref: { type: 'string' },
      },
    }),
    maxBackupAge: { type: ['integer', 'null'], description: "Alarm bound on the newest good backup's age, seconds; null: derived from the schedule." },
    ping: { type: 'boolean', description: 'Whether a heartbeat ping URL is set (the URL is never shown).' },
    alarms: { type: 'array', items: { $ref: 'Alarm#' }, description: 'Alarms active now (GET only).' },
    continuous: { ...nullable(continuousSettingsSchema), description: 'Continuous backup: its settings, or null when it is off.' },
    continuity: {
      ...nullable(continuitySchema),
      description:
        'GET /api/v1/targets/{name} only: the change stream, the tables not continuously protected, the restorable window and its limits; null if the target was never continuous.',
    },
    rpo: {
      ...nullable({
        type: 'object',
        required: ['state', 'seconds', 'maxSeconds'],
        properties: {
          state: { type: 'string', enum: ['starting', 'streaming', 'stopped'] },
          seconds: { type: 'integer', description: 'Now minus the recovery point, as /metrics reports it.' },
          maxSeconds: { type: 'integer', description: 'The bound past which `rpo_exceeded` is raised.' },
        },
      }),
      description: 'GET /api/v1/targets only: a continuous target’s current RPO; null for a target that is not continuous.',
    },
    baseRunId: { ...uuid, description: 'Create or update that turned continuity on: the base backup it queued.' },
    unprotectedTables: { type: 'array', items: unprotectedTableSchema, description: 'Create or update with continuity: the tables left out of the publication, each with the fix.' },
    warnings: { type: 'array', items: { type: 'string' }, description: 'What could not be done on the source (a slot or publication left there), with what to do by hand.' },
    createdAt: dateTime,
    updatedAt: dateTime,
    actions: actionsOf(targetActionNames, 'What the caller may do with this target now, and why not (GET /api/v1/targets/{name} only).'),
  },
} as const;

export const apiTokenSchema = {
  $id: 'ApiToken',
  type: 'object',
  required: ['id', 'name', 'role', 'createdAt'],
  properties: {
    id: uuid,
    name: { type: 'string' },
    role: { type: 'string', enum: apiTokenRoles },
    owner: { type: ['string', 'null'], description: 'The person or service that holds the token.' },
    createdAt: dateTime,
    lastUsedAt: nullableDateTime,
    revokedAt: nullableDateTime,
  },
} as const;

/** What a runner learns of its run's target at claim: never the database URL, which the runner has from its own environment. */
export const runnerTargetSchema = {
  $id: 'RunnerTarget',
  type: 'object',
  description: "The run's target as its runner needs it: where to store and how to dump. Never the database URL: a remote runner takes it from its own environment (secrets).",
  required: ['id', 'name', 'storeUrl', 'options'],
  properties: {
    id: uuid,
    name: { type: 'string' },
    storeUrl: { type: 'string' },
    options: targetOptionsView,
    continuous: {
      ...nullable({ type: 'object', required: ['slot'], properties: { slot: { type: 'string' } } }),
      description: "A continuous target's replication slot: each backup is then a base, dumped from a temporary slot's snapshot (docs/CONTINUOUS.md).",
    },
  },
} as const;

export const sharedSchemas = [errorSchema, runSchema, runEventSchema, alarmSchema, targetSchema, apiTokenSchema, runnerTargetSchema, sharedChannelSchema];

export const ref = (id: string) => ({ $ref: `${id}#` });

/** Error responses every route can give. */
export const errorResponses = {
  '4xx': { description: 'The request was refused; see error.code.', ...ref('Error') },
  '5xx': { description: 'The server or the catalog failed; see error.code.', ...ref('Error') },
} as const;
