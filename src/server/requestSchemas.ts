import { RESTORE_TO_PATTERN } from '../core/restoreDestination.ts';
import { backupProfiles } from '../core/manifest.ts';
import { notificationEvents } from '../core/notificationChannels.ts';
import { runnerOutcomes, runStatuses } from '../core/runState.ts';
import { jobStatuses } from '../control/jobReport.ts';
import { apiTokenRoles } from '../db/tokens.ts';
import { artifactBody, nullable, runKinds, uuid } from './responseSchemas.ts';

/**
 * Request schemas of the API: path parameters, query strings and bodies. Bodies are validated
 * without type coercion and refuse unknown properties (see validation.ts); what JSON Schema
 * cannot say (URLs, cron, time zones, age keys) is checked in targetInput.ts. The `examples`
 * are valid requests: the property test in test/server.property.test.ts breaks them.
 */

export const MAX_PAGE_SIZE = 200;
export const MAX_OFFSET = 10_000;
export const TARGET_NAME_PATTERN = '^[a-z0-9][a-z0-9_.-]{0,62}$';

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

export const historyQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100, description: 'How many of the newest finished backups, at most 1000.' },
  },
} as const;

export const eventFeedHeaders = {
  type: 'object',
  properties: {
    'last-event-id': { type: 'string', pattern: '^[0-9]{1,15}$', description: 'Resume after this event id; absent: from now on (stream) or from the start (JSON).' },
  },
} as const;

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
      restoreTo: {
        type: 'array',
        maxItems: 50,
        items: { type: 'string', maxLength: 300, pattern: RESTORE_TO_PATTERN },
        description: "Where operators may restore this target's backups through the API: `HOST:PORT/DATABASE` entries, each part exact or `*` for any. Admins restore anywhere.",
      },
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
    privilegedRole: {
      type: 'string',
      minLength: 1,
      maxLength: 63,
      description:
        "The role the destination URL connects as, to accept it although it is a superuser, has CREATEROLE or can run programs or read files on its server (the backup's code runs as it). Without it, or with another name, such a role is refused (403 RESTORE_ROLE_PRIVILEGED).",
    },
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

export const releaseBody = {
  type: 'object',
  additionalProperties: false,
  required: ['leaseId', 'reason'],
  properties: { leaseId, reason: { type: 'string', minLength: 1, maxLength: 500, description: 'Why the run goes back to the queue.' } },
  examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', reason: 'runner shutting down' }],
} as const;

export const jobReportBody = {
  type: 'object',
  additionalProperties: false,
  required: ['jobStatus'],
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, written as GitHub spells it
  properties: { jobStatus: { type: 'string', enum: jobStatuses, description: "The CI job's status (GitHub: `${{ job.status }}`)." } },
  examples: [{ jobStatus: 'failure' }],
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
