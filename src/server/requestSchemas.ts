import { runnerOutcomes, runStatuses } from '../core/runState.ts';
import { TARGET_NAME } from '../core/targetName.ts';
import { targetCreateSchema, targetUpdateSchema } from '../operations/targets/targetInput.ts';
import { jobStatuses } from '../control/jobReport.ts';
import { apiTokenRoles } from '../db/tokens.ts';
import { artifactBody, nullable, runKinds, uuid } from './responseSchemas.ts';
import { zodBody } from './validation.ts';

/**
 * Request schemas of the API: path parameters, query strings and bodies. Bodies are validated
 * without type coercion and refuse unknown properties (see validation.ts); target bodies are
 * the target operations' zod schemas, which also check what JSON Schema cannot say (URLs,
 * cron, time zones, age keys). The `examples` are valid requests: the property test in
 * test/server.property.test.ts breaks them.
 */

export const MAX_PAGE_SIZE = 200;
export const MAX_OFFSET = 10_000;
export const TARGET_NAME_PATTERN = TARGET_NAME.source;

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

/** Bodies of POST and PATCH /api/v1/targets: the operations' own input schemas (src/operations/targets/targetInput.ts). */
export const targetCreateBody = zodBody(targetCreateSchema);
export const targetUpdateBody = zodBody(targetUpdateSchema);

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
        'The role the destination URL connects as, to accept it although it is a superuser, has CREATEROLE or can run programs or read files on its server (the backup\'s code runs as it). Without it, or with another name, such a role is refused (403 RESTORE_ROLE_PRIVILEGED).',
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
    progress: {
      ...nullable({ type: 'object', maxProperties: 50 }),
      description: 'Progress, as POST /api/v1/runs/{id}/progress takes it. Progress that is not in that shape is left out (the lease is still renewed).',
    },
  },
  examples: [{ leaseId: '00000000-0000-4000-8000-000000000000' }],
} as const;

const progressExample = {
  operation: 'backup',
  phase: 'dumping',
  bytesDone: 104857600,
  bytesStored: 31457280,
  bytesDumped: 104857600,
  totalBytes: 262144000,
  totalBasis: 'previous-backup',
  percent: 40,
  rateBytesPerSecond: 26214400,
  etaSeconds: 6,
  elapsedMs: 4100,
};

export const progressBody = {
  type: 'object',
  additionalProperties: false,
  required: ['leaseId', 'progress'],
  properties: {
    leaseId,
    progress: { type: 'object', maxProperties: 50, description: 'Operation, phase, byte counts, total, percent, rate, time left: see the Run schema.' },
  },
  examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', progress: progressExample }],
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
    progress: { ...nullable({ type: 'object', maxProperties: 50 }), description: 'How the work ended, as the progress route takes it.' },
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
