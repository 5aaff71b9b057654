import { RESTORE_TO_PATTERN } from '../core/restoreDestination.ts';
import { backupProfiles } from '../core/manifest.ts';
import { notificationEvents } from '../core/notificationChannels.ts';
import { nullable, uuid } from './responseSchemas.ts';

/**
 * Request schemas of the API that no operation owns yet: path parameters, headers and the
 * target bodies. The bodies and query strings of the other routes are the zod schemas of the
 * operations they feed (src/operations/), turned into JSON Schema by requestJsonSchema. Bodies
 * are validated without type coercion and refuse unknown properties (see validation.ts); what
 * JSON Schema cannot say (URLs, cron, time zones, age keys) is checked in targetInput.ts. The
 * `examples` are valid requests: the property test in test/server.property.test.ts breaks them.
 */

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
        description: 'Where operators may restore this target\'s backups through the API: `HOST:PORT/DATABASE` entries, each part exact or `*` for any. Admins restore anywhere.',
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
