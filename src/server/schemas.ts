import { backupProfiles } from '../core/manifest.ts';
import { runnerOutcomes, runStatuses } from '../core/runState.ts';
import { apiTokenRoles } from '../db/tokens.ts';

/**
 * JSON Schemas of the API: they validate requests (bodies without type coercion), serialize
 * responses (an allow-list: a field not listed here never leaves the server, which is the
 * second line of defence for secrets) and generate /api/openapi.json.
 */

export const MAX_PAGE_SIZE = 200;
export const MAX_OFFSET = 10_000;

const notificationEvents = ['failed', 'timed_out', 'succeeded', 'recovered', 'cancelled', 'verify_failed'] as const;
const runKinds = ['backup', 'verify'] as const;

const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: 'null' }] });
const dateTime = { type: 'string', format: 'date-time' } as const;
const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const;
const freeObject = { type: 'object', additionalProperties: true } as const;

export const TARGET_NAME_PATTERN = '^[a-z0-9][a-z0-9_.-]{0,62}$';
const uuid = { type: 'string', format: 'uuid' } as const;

// ---------- shared response schemas (registered with addSchema, referenced as 'Name#') ----------

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  description: 'Every error response. `code` is stable (see src/core/errors.ts); `message` says what to do next.',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

const artifactFile = {
  type: 'object',
  required: ['name', 'size', 'sha256'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9._-]+$' },
    size: { type: 'integer', minimum: 0 },
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
  },
} as const;

/** An artifact as the catalog records it; also what a remote runner sends to finalize. */
export const artifactBody = {
  type: 'object',
  required: ['storeUrl', 'prefix', 'manifest', 'files'],
  additionalProperties: false,
  properties: {
    storeUrl: { type: 'string', minLength: 1, maxLength: 2048 },
    prefix: { type: 'string', minLength: 1, maxLength: 1024 },
    manifest: artifactFile,
    files: { type: 'array', minItems: 1, maxItems: 100, items: artifactFile },
  },
} as const;

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
    progress: nullable(freeObject),
    artifact: nullable(artifactBody),
    executor: nullable(freeObject),
    verification: nullable(freeObject),
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

export const targetSchema = {
  $id: 'Target',
  type: 'object',
  description: 'A database to back up. Its database URL and notification URLs and secrets are write-only.',
  required: ['id', 'name', 'storeUrl', 'options', 'exclusive', 'maxAttempts', 'notifications', 'createdAt', 'updatedAt'],
  properties: {
    id: uuid,
    name: { type: 'string' },
    storeUrl: { type: 'string' },
    options: {
      type: 'object',
      properties: {
        compression: { type: 'string' },
        encryptTo: { type: 'array', items: { type: 'string' } },
        profile: { type: 'string' },
        checksums: { type: 'boolean' },
      },
    },
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
          kind: { type: 'string' },
          on: { type: 'array', items: { type: 'string' } },
          signed: { type: 'boolean', description: 'Whether deliveries are signed with a secret (the secret is never shown).' },
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
    createdAt: dateTime,
    updatedAt: dateTime,
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
    createdAt: dateTime,
    lastUsedAt: nullableDateTime,
    revokedAt: nullableDateTime,
  },
} as const;

export const sharedSchemas = [errorSchema, runSchema, runEventSchema, targetSchema, apiTokenSchema];

export const ref = (id: string) => ({ $ref: `${id}#` });

/** Error responses every route can give. */
export const errorResponses = {
  '4xx': { description: 'The request was refused; see error.code.', ...ref('Error') },
  '5xx': { description: 'The server or the catalog failed; see error.code.', ...ref('Error') },
} as const;

// ---------- parameters ----------

export const runParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { ...uuid, description: 'Run id.' } },
} as const;

export const targetParams = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: TARGET_NAME_PATTERN, description: 'Target name.' } },
} as const;

export const tokenParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { ...uuid, description: 'API token id.' } },
} as const;

export const runListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    target: { type: 'string', pattern: TARGET_NAME_PATTERN, description: 'Only runs of this target.' },
    status: { type: 'string', enum: runStatuses, description: 'Only runs in this status.' },
    kind: { type: 'string', enum: runKinds, description: 'Only backups or only verification drills.' },
    limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 50, description: `Page size, at most ${MAX_PAGE_SIZE}.` },
    cursor: {
      type: 'string',
      minLength: 1,
      maxLength: 200,
      pattern: '^[A-Za-z0-9_-]+$',
      description: '`nextCursor` of the previous page (newest first). Stable while runs are added.',
    },
    offset: { type: 'integer', minimum: 0, maximum: MAX_OFFSET, description: 'Skip this many runs (instead of a cursor).' },
  },
} as const;

// ---------- request bodies ----------

const cronSchedule = {
  type: 'object',
  additionalProperties: false,
  required: ['cron', 'timezone'],
  properties: {
    cron: { type: 'string', minLength: 1, maxLength: 120, description: 'Cron expression (5 fields, or 6 with seconds).' },
    timezone: { type: 'string', minLength: 1, maxLength: 64, description: 'IANA time zone, e.g. Europe/Paris or UTC.' },
  },
} as const;

const retention = {
  type: 'object',
  additionalProperties: false,
  properties: {
    keepLast: { type: 'integer', minimum: 0, maximum: 10_000 },
    daily: { type: 'integer', minimum: 0, maximum: 10_000 },
    weekly: { type: 'integer', minimum: 0, maximum: 10_000 },
    monthly: { type: 'integer', minimum: 0, maximum: 10_000 },
  },
} as const;

const verificationPolicy = {
  type: 'object',
  additionalProperties: false,
  properties: {
    everyNth: { type: 'integer', minimum: 1, maximum: 1000, description: 'Verify every Nth successful backup.' },
    cron: { type: 'string', minLength: 1, maxLength: 120 },
    timezone: { type: 'string', minLength: 1, maxLength: 64 },
    checksums: { type: 'boolean' },
  },
} as const;

const notificationChannel = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'on'],
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'Keep an existing channel (and its url and secret) by sending its id.' },
    kind: { type: 'string', enum: ['webhook', 'slack'] },
    url: { type: 'string', minLength: 1, maxLength: 2048, writeOnly: true, description: 'Secret: http(s) URL, never returned.' },
    secret: {
      ...nullable({ type: 'string', minLength: 16, maxLength: 256 }),
      writeOnly: true,
      description: 'Secret: signs webhook deliveries, never returned. null removes it.',
    },
    on: { type: 'array', minItems: 1, maxItems: notificationEvents.length, uniqueItems: true, items: { type: 'string', enum: notificationEvents } },
  },
} as const;

const githubExecutor = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'owner', 'repo', 'workflow'],
  properties: {
    kind: { type: 'string', enum: ['github'] },
    owner: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9-]{0,38}$' },
    repo: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,100}$' },
    workflow: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,200}$' },
    ref: { type: 'string', pattern: '^[A-Za-z0-9._/-]{1,200}$', description: 'Branch or tag (default main).' },
  },
} as const;

const targetFields = {
  name: { type: 'string', pattern: TARGET_NAME_PATTERN, description: 'Lowercase letters, digits, ".", "_", "-".' },
  databaseUrl: {
    type: 'string',
    minLength: 1,
    maxLength: 2048,
    writeOnly: true,
    description: 'Secret: postgres://USER:PASSWORD@HOST:PORT/DATABASE. Stored, never returned.',
  },
  storeUrl: { type: 'string', minLength: 1, maxLength: 2048, description: 'file:///absolute/path or s3://bucket/prefix?… (default: the server’s BACKSTOP_STORE).' },
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      compression: { type: 'string', pattern: '^(zstd|gzip|none)(:-?[0-9]{1,3})?$', description: 'zstd, zstd:LEVEL, gzip, gzip:LEVEL or none.' },
      encryptTo: { type: 'array', maxItems: 20, items: { type: 'string', pattern: '^age1[02-9ac-hj-np-z]{50,70}$' }, description: 'age recipients (public keys).' },
      profile: { type: 'string', enum: backupProfiles, description: 'How the target is dumped (supabase: roles, schema and data as `supabase db dump` splits them).' },
      checksums: { type: 'boolean', description: 'Record per-table content checksums at dump time.' },
    },
  },
  exclusive: { type: 'boolean', description: 'At most one executing run of this target at a time (default true).' },
  maxAttempts: { type: 'integer', minimum: 1, maximum: 10 },
  schedule: { ...nullable(cronSchedule), description: 'When to back up, or null for on demand only.' },
  retention: nullable(retention),
  verification: nullable(verificationPolicy),
  notifications: { type: 'array', maxItems: 20, items: notificationChannel },
  executor: { ...nullable(githubExecutor), description: 'Run backups in GitHub Actions, or null for workers.' },
} as const;

const targetExample = {
  name: 'app',
  databaseUrl: 'postgres://backup:secret@db.example.com:5432/app',
  storeUrl: 's3://backups/app?region=eu-west-1',
  options: { compression: 'zstd' },
  maxAttempts: 2,
  schedule: { cron: '0 3 * * *', timezone: 'Europe/Paris' },
  retention: { keepLast: 7, daily: 7, weekly: 4 },
  notifications: [{ kind: 'webhook', url: 'https://hooks.example.com/backstop', on: ['failed', 'timed_out'] }],
};

export const targetCreateBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'databaseUrl'],
  properties: targetFields,
  examples: [targetExample],
} as const;

export const targetUpdateBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: targetFields,
  description: 'Fields to change; absent fields keep their value. `notifications` replaces the list.',
  examples: [{ maxAttempts: 3, schedule: { cron: '30 2 * * *', timezone: 'UTC' } }],
} as const;

export const runCreateBody = {
  type: 'object',
  additionalProperties: false,
  required: ['target'],
  properties: { target: { type: 'string', pattern: TARGET_NAME_PATTERN, description: 'Name of the target to back up.' } },
  examples: [{ target: 'app' }],
} as const;

export const restoreBody = {
  type: 'object',
  additionalProperties: false,
  required: ['databaseUrl'],
  properties: {
    databaseUrl: { type: 'string', minLength: 1, maxLength: 2048, writeOnly: true, description: 'Secret: the database to restore into (empty unless clean).' },
    clean: { type: 'boolean', default: false, description: 'Drop and recreate the objects the backup contains.' },
    jobs: { type: 'integer', minimum: 1, maximum: 64, default: 1, description: 'Parallel pg_restore jobs; 1 restores in one transaction.' },
    noOwner: { type: 'boolean', default: false, description: 'Do not restore ownership and privileges.' },
    identity: { type: 'string', minLength: 1, maxLength: 16_384, writeOnly: true, description: 'Secret: age identity file contents, for an encrypted backup.' },
  },
  examples: [{ databaseUrl: 'postgres://restore:secret@db.example.com:5432/app_restored', clean: false, jobs: 1 }],
} as const;

export const tokenCreateBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'role'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9 _.@:-]{0,99}$' },
    role: { type: 'string', enum: apiTokenRoles },
  },
  examples: [{ name: 'dashboard', role: 'viewer' }],
} as const;

export const claimBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    claimedBy: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9 _.:/@()#-]{0,199}$', description: 'Who runs it, e.g. a CI job URL.' },
  },
  examples: [{ claimedBy: 'github:acme/app#1234' }],
} as const;

const leaseId = { type: 'string', format: 'uuid', description: 'The lease id returned by claim.' } as const;

export const heartbeatBody = {
  type: 'object',
  additionalProperties: false,
  required: ['leaseId'],
  properties: {
    leaseId,
    progress: { ...nullable({ type: 'object', maxProperties: 50 }), description: 'Free-form progress (bytes, tables…).' },
  },
  examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', progress: { bytes: 1048576 } }],
} as const;

export const finalizeBody = {
  type: 'object',
  additionalProperties: false,
  required: ['leaseId', 'outcome'],
  properties: {
    leaseId,
    outcome: { type: 'string', enum: runnerOutcomes },
    error: nullable({
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: { code: { type: 'string', pattern: '^[A-Z][A-Z0-9_]{0,63}$' }, message: { type: 'string', maxLength: 4000 } },
    }),
    artifact: { ...nullable(artifactBody), description: 'Required to finalize a backup as succeeded.' },
  },
  examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', outcome: 'failed', error: { code: 'DUMP_FAILED', message: 'pg_dump exited with 1' } }],
} as const;

export const runnerEventBody = {
  type: 'object',
  additionalProperties: false,
  required: ['leaseId', 'kind', 'message'],
  properties: {
    leaseId,
    kind: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,39}$' },
    message: { type: 'string', minLength: 1, maxLength: 2000 },
    data: { type: 'object', maxProperties: 50 },
  },
  examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', kind: 'progress', message: 'dumped 3 of 12 tables' }],
} as const;
