import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseDatabaseUrl } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { backupProfiles } from '../../core/manifest.ts';
import { channelKinds, channelNameSchema, channelSettingsFields } from '../../core/channelSettings.ts';
import { globalsChoices } from '../../core/serverDatabases.ts';
import { isHttpUrl, notificationEvents } from '../../core/notificationChannels.ts';
import { assertRestoreToEntry, RESTORE_TO_PATTERN } from '../../core/restoreDestination.ts';
import { isValidTimezone, parseSchedule } from '../../core/scheduleSlots.ts';
import { TARGET_NAME, TARGET_NAME_RULE } from '../../core/targetName.ts';
import { parseRecipient } from '../../pipeline/age.ts';
import { parseCompression } from '../../pipeline/compression.ts';
import { parseS3Url } from '../../storage/s3Url.ts';

/**
 * What a target may be: the one definition of every field's rules, for `target add|update` and
 * `backstop backup` on the CLI and POST/PATCH /api/v1/targets alike (the API's JSON Schema is
 * derived from these schemas). Messages are predicates in plain words, without the field's
 * name: the API sends the field beside them, the CLI prints its flag in front.
 */

/** A refinement that runs one of Backstop's parsers and reports its INVALID_INPUT message as the issue. */
function checkedBy<T>(parse: (value: T) => unknown, path?: PropertyKey[]) {
  return (value: T, ctx: z.core.$RefinementCtx<unknown>) => {
    try {
      parse(value);
    } catch (error) {
      if (!(error instanceof BackstopError) || error.code !== 'INVALID_INPUT') throw error;
      ctx.addIssue({ code: 'custom', message: error.message, input: value, ...(path ? { path } : {}) });
    }
  };
}

function wholeNumber(min: number, max: number) {
  const rule = `must be a whole number from ${min} to ${max}`;
  return z.number({ error: rule }).int({ error: rule }).min(min, { error: rule }).max(max, { error: rule });
}

export const targetNameSchema = z
  .string({ error: TARGET_NAME_RULE })
  .regex(TARGET_NAME, { error: TARGET_NAME_RULE })
  .meta({ description: 'Lowercase letters, digits, ".", "_", "-"; the first folder of its backups in the store.' });

const databaseUrl = z
  .string()
  .min(1)
  .max(2048)
  .superRefine(checkedBy(parseDatabaseUrl))
  .meta({ writeOnly: true, description: 'Secret: postgres://USER:PASSWORD@HOST:PORT/DATABASE. Stored, never returned.' });

/** A store Backstop can open: an absolute file:// folder, or an S3 URL without credentials. */
export function assertStoreUrl(storeUrl: string): void {
  const invalid = (message: string): never => {
    throw new BackstopError('INVALID_INPUT', message);
  };
  if (storeUrl.startsWith('s3://')) {
    parseS3Url(storeUrl);
    return;
  }
  if (storeUrl.startsWith('file://')) {
    let folder = '';
    try {
      folder = fileURLToPath(storeUrl);
    } catch {
      invalid(`"${storeUrl}" is not a file URL: use file:///absolute/path.`);
    }
    if (!path.isAbsolute(folder)) invalid('A file store must name an absolute folder: file:///absolute/path.');
    return;
  }
  invalid('Backstop stores backups in a folder (file:///absolute/path) or an S3-compatible bucket (s3://bucket/prefix?…, credentials from the environment, never the URL).');
}

const storeUrl = z
  .string()
  .min(1)
  .max(2048)
  .superRefine(checkedBy(assertStoreUrl))
  .meta({ description: 'file:///absolute/path or s3://bucket/prefix?… (default: the server’s BACKSTOP_STORE).' });

const RECIPIENT = /^age1[02-9ac-hj-np-z]{50,70}$/;
const recipient = z.string({ error: 'must be an age recipient (age1…)' }).regex(RECIPIENT, { error: 'must be an age recipient (age1…)' }).superRefine(checkedBy(parseRecipient));

const serverUrl = z.string().min(1).max(2048).superRefine(checkedBy(parseDatabaseUrl)).meta({
  writeOnly: true,
  description:
    'Secret: postgres://USER:PASSWORD@HOST:PORT/ — a whole server (the server profile): its roles and every database the target selects. A database in the path is where the server is read from (default postgres). Stored, never returned.',
});

const databaseNameRule = 'must be a database name (1 to 63 characters)';
const databaseList = z.array(z.string({ error: databaseNameRule }).min(1, { error: databaseNameRule }).max(63, { error: databaseNameRule })).max(500);

const serverOptions = z
  .strictObject({
    databases: databaseList
      .min(1, { error: 'must name at least one database; leave it out to back up every database' })
      .refine((names) => new Set(names).size === names.length, { error: 'must not name a database twice' })
      .optional()
      .meta({ description: 'Only these databases. Absent: every database on the server at the time of each run (templates and databases that refuse connections excepted).' }),
    excludeDatabases: databaseList.optional().meta({ description: 'Databases to leave out.' }),
    globals: z
      .enum(globalsChoices, { error: `use ${globalsChoices.join(', ')}` })
      .optional()
      .meta({
        description:
          'The roles of the server (pg_dumpall --globals-only): roles+passwords (the default; without passwords, said in the run, where the server does not let the backup read pg_authid), roles (never passwords) or none.',
      }),
    jobs: wholeNumber(1, 16).optional().meta({ description: 'Databases dumped at once (default 1).' }),
  })
  .meta({ description: 'The server profile only: which databases and globals a backup takes.' });

const COMPRESSION = /^(zstd|gzip|none)(:-?[0-9]{1,3})?$/;
const compressionRule = 'must be zstd, zstd:LEVEL (1-19), gzip, gzip:LEVEL (1-9) or none';

const options = z
  .strictObject({
    compression: z
      .string({ error: compressionRule })
      .regex(COMPRESSION, { error: compressionRule })
      .superRefine(checkedBy(parseCompression))
      .optional()
      .meta({ description: 'zstd, zstd:LEVEL, gzip, gzip:LEVEL or none (default zstd:1).' }),
    encryptTo: z.array(recipient).max(20).optional().meta({ description: 'age recipients (public keys); an empty list: no encryption.' }),
    profile: z
      .enum(backupProfiles, { error: (issue) => `${typeof issue.input === 'string' ? `"${issue.input}" is not a profile: ` : ''}use ${backupProfiles.join(' or ')}` })
      .optional()
      .meta({ description: 'How the target is dumped (supabase: roles, schema and data as `supabase db dump` splits them).' }),
    checksums: z.boolean().optional().meta({ description: 'Record per-table content checksums at dump time.' }),
    withStorage: z.boolean().optional().meta({ description: "Supabase profile only: also copy the project's Storage objects." }),
    server: serverOptions.optional(),
    jobs: wholeNumber(1, 32).optional().meta({
      description:
        'Default profile: pg_dump streams at once, each of its own tables, all from one exported snapshot (default 1: one archive). Server targets set server.jobs (databases at once) instead.',
    }),
    restoreTo: z
      .array(
        z
          .string()
          .max(300)
          .regex(new RegExp(RESTORE_TO_PATTERN), { error: 'must be HOST:PORT/DATABASE, each part exact or * for any, e.g. restore.internal:5432/app_restored' })
          .superRefine(checkedBy(assertRestoreToEntry)),
      )
      .max(50)
      .optional()
      .meta({
        description: "Where operators may restore this target's backups through the API: `HOST:PORT/DATABASE` entries, each part exact or `*` for any. Admins restore anywhere.",
      }),
  })
  .superRefine((value, ctx) => {
    if (value.jobs !== undefined && value.jobs > 1 && (value.profile ?? 'default') !== 'default') {
      ctx.addIssue({
        code: 'custom',
        path: ['jobs'],
        message: `splits one database into parallel pg_dump streams: only the default profile does (a server target's --jobs is its databases at once)`,
        input: value.jobs,
      });
    }
    if (value.withStorage && value.profile !== 'supabase') {
      ctx.addIssue({
        code: 'custom',
        path: ['withStorage'],
        message: 'copies the Storage objects of a Supabase project: it needs the supabase profile (and SUPABASE_STORAGE_S3_ENDPOINT with its keys where the backup runs)',
        input: value.withStorage,
      });
    }
  })
  .meta({ description: 'How the target is dumped and stored. Replaces the whole set on update.' });

const cron = z.string().min(1).max(120);
const timezone = z
  .string()
  .min(1)
  .max(64)
  .refine(isValidTimezone, { error: (issue) => `"${String(issue.input)}" is not a time zone: use an IANA name such as UTC, Europe/Paris or America/New_York` });

const schedule = z
  .strictObject({
    cron: cron.superRefine(checkedBy((text: string) => parseSchedule(text, 'UTC'))).meta({ description: 'Cron expression (5 fields, or 6 with seconds first, or @daily…).' }),
    timezone: timezone.meta({ description: 'IANA time zone, e.g. Europe/Paris or UTC.' }),
  })
  .nullable()
  .meta({ description: 'When to back up, or null for on demand only.' });

const retentionCount = wholeNumber(0, 10_000).optional();
const retention = z
  .strictObject({ keepLast: retentionCount, daily: retentionCount, weekly: retentionCount, monthly: retentionCount })
  .superRefine((value, ctx) => {
    if (!value.keepLast && !value.daily && !value.weekly && !value.monthly) {
      ctx.addIssue({ code: 'custom', message: 'must keep at least one backup by some rule (keepLast, daily, weekly or monthly above 0)', input: value });
    }
  })
  .nullable()
  .meta({ description: 'Grandfather-father-son retention, or null to keep every backup.' });

const verification = z
  .strictObject({
    everyNth: wholeNumber(1, 1000).optional().meta({ description: 'A drill of every Nth successful backup.' }),
    cron: cron.superRefine(checkedBy((text: string) => parseSchedule(text, 'UTC', 'drill schedule'))).optional(),
    timezone: timezone.optional(),
    checksums: z.boolean().optional(),
  })
  .superRefine((value, ctx) => {
    if (value.timezone !== undefined && value.cron === undefined) {
      ctx.addIssue({ code: 'custom', path: ['timezone'], message: 'applies to a drill schedule: give a cron as well', input: value.timezone });
    }
    if (value.everyNth === undefined && value.cron === undefined) {
      ctx.addIssue({ code: 'custom', message: 'must say when to drill: everyNth, cron or both', input: value });
    }
  })
  .nullable()
  .meta({ description: 'Restore drills: every Nth backup and/or on a cron, or null for none.' });

const notificationChannel = z
  .strictObject({
    id: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1 to 64 letters, digits, "_" or "-"' })
      .optional()
      .meta({ description: 'Keep an existing channel (and its secrets) by sending its id.' }),
    kind: z
      .enum([...channelKinds, 'shared'])
      .meta({ description: 'A channel of its own (webhook, slack, email, discord, telegram, teams, ntfy), or `shared`: a named channel (`channel`).' }),
    channel: channelNameSchema.optional().meta({ description: 'kind `shared`: the name of a shared channel (GET /api/v1/channels).' }),
    ...channelSettingsFields,
    on: z
      .array(z.enum(notificationEvents))
      .min(1)
      .max(notificationEvents.length)
      .refine((events) => new Set(events).size === events.length, { error: 'must not name an event twice' }),
  })
  .superRefine((value, ctx) => {
    if (value.kind === 'shared' && value.channel === undefined)
      ctx.addIssue({ code: 'custom', path: ['channel'], message: 'is required for a shared channel: its name', input: value.channel });
    if (value.kind !== 'shared' && value.channel !== undefined) ctx.addIssue({ code: 'custom', path: ['channel'], message: 'applies to kind shared only', input: value.channel });
  });

const notifications = z
  .array(notificationChannel)
  .max(20)
  .superRefine((channels, ctx) => {
    const seen = new Set<string>();
    channels.forEach((channel, index) => {
      if (channel.id === undefined) return;
      if (seen.has(channel.id)) ctx.addIssue({ code: 'custom', path: [index, 'id'], message: `"${channel.id}" appears twice`, input: channel.id });
      seen.add(channel.id);
    });
  })
  .meta({
    description:
      'Notification channels; replaces the list on update. A channel sent with the id of an existing one keeps its secrets (url, secret, token, botToken, password) unless new ones are given.',
  });

const executor = z
  .strictObject({
    kind: z.literal('github'),
    owner: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,38}$/, { error: 'must be a GitHub user or organisation name' }),
    repo: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, { error: 'must be a GitHub repository name' }),
    workflow: z.string().regex(/^[A-Za-z0-9._-]{1,200}\.ya?ml$/, { error: 'must be a workflow file name such as backstop-backup.yml' }),
    ref: z
      .string()
      .regex(/^[A-Za-z0-9._/-]{1,200}$/, { error: 'must name a branch or tag' })
      .optional()
      .meta({ description: 'Branch or tag the workflow runs on (default main).' }),
  })
  .nullable()
  .meta({ description: 'Run backups in GitHub Actions, or null for workers.' });

const maxBackupAge = wholeNumber(1, 31_536_000).nullable().meta({
  description:
    "Alarm (backup_overdue) when the newest good backup is older than this many seconds; null: the schedule's interval plus BACKSTOP_ALARM_GRACE (no bound without a schedule).",
});

/** A heartbeat URL must be http(s); like a channel URL it is a secret and is not repeated. */
export function assertPingUrl(raw: string): void {
  if (!isHttpUrl(raw)) {
    throw new BackstopError('INVALID_INPUT', "is not an http:// or https:// URL: pass the check's full ping URL, e.g. https://hc-ping.com/UUID.");
  }
}

const pingUrl = z.string().min(1).max(2048).superRefine(checkedBy(assertPingUrl)).nullable().meta({
  writeOnly: true,
  description: 'Secret: a Healthchecks-style ping URL, pinged with /start when a backup starts, alone on success and with /fail on failure. null removes it. Never returned.',
});

const QUALIFIED_TABLE = /^[^.\s]{1,63}\.[^.\s]{1,63}$/;
const tableRule = 'must name tables as schema.table';

const continuous = z
  .strictObject({
    tables: z
      .array(z.string({ error: tableRule }).regex(QUALIFIED_TABLE, { error: tableRule }))
      .min(1, { error: 'must name at least one table; leave it out (or null) to follow every table it can' })
      .max(10_000)
      .refine((names) => new Set(names).size === names.length, { error: 'must not name a table twice' })
      .nullable()
      .optional()
      .meta({ description: 'Only these tables (`schema.table`). Absent on create, or null: every table that can be followed safely (with a primary key or a replica identity).' }),
    segmentSeconds: wholeNumber(1, 3600).optional().meta({ description: 'A change segment closes after this many seconds (default 10).' }),
    segmentBytes: wholeNumber(65_536, 1_073_741_824).optional().meta({ description: 'Or after this many bytes of decoded changes (default 16 MiB).' }),
    slotWarnBytes: wholeNumber(1_048_576, 2 ** 50)
      .optional()
      .meta({ description: 'Alarm when the slot holds back more WAL on the source than this (default 1 GiB).' }),
    slotLimitBytes: wholeNumber(1_048_576, 2 ** 50)
      .optional()
      .meta({ description: "Over this much held-back WAL the slot is dropped: the source's disk comes first (default 8 GiB)." }),
    maxRpoSeconds: wholeNumber(1, 604_800)
      .optional()
      .meta({ description: 'Alarm when the recovery point (the newest instant before which every commit is stored) is older than this (default 300).' }),
  })
  .superRefine((value, ctx) => {
    if (value.slotWarnBytes !== undefined && value.slotLimitBytes !== undefined && value.slotWarnBytes >= value.slotLimitBytes) {
      ctx.addIssue({ code: 'custom', path: ['slotWarnBytes'], message: 'must be below slotLimitBytes: the warning comes before the slot is dropped', input: value.slotWarnBytes });
    }
  })
  .nullable()
  .meta({
    description:
      'Continuous backup (see docs/CONTINUOUS.md): an object turns it on (or changes its settings, and re-plans the published tables), null turns it off and drops the slot and publication on the source. Needs wal_level = logical, a role with REPLICATION, and a direct connection (not a pooler).',
  });

const checks = z.boolean().optional().meta({
  description:
    'Check before storing anything (default true): the database is reached and its version read, a fitting pg_dump is found, and a probe object is written to the store and deleted. false skips those three (e.g. a database only a GitHub runner reaches).',
});

/** Every field a target has, each optional: what an update may change. */
const targetFields = {
  name: targetNameSchema.optional(),
  databaseUrl: databaseUrl.optional(),
  serverUrl: serverUrl.optional(),
  storeUrl: storeUrl.optional(),
  options: options.optional(),
  exclusive: z.boolean().optional().meta({ description: 'At most one executing run of this target at a time (default true).' }),
  maxAttempts: wholeNumber(1, 10).optional().meta({ description: 'Attempts per run when a runner dies (1: no retry).' }),
  schedule: schedule.optional(),
  paused: z.boolean().optional().meta({ description: 'No scheduled backups or drills while true; manual runs still work. Slots missed while paused are not caught up.' }),
  retention: retention.optional(),
  verification: verification.optional(),
  notifications: notifications.optional(),
  executor: executor.optional(),
  maxBackupAge: maxBackupAge.optional(),
  pingUrl: pingUrl.optional(),
  continuous: continuous.optional(),
  checks,
};

/**
 * `serverUrl` is `databaseUrl` with the server profile: whichever a caller sends, the target
 * stores one URL and its profile says what it is.
 */
function serverUrlRules(
  value: { databaseUrl?: string; serverUrl?: string; options?: { profile?: string; server?: unknown }; continuous?: unknown },
  ctx: z.core.$RefinementCtx<unknown>,
  creating: boolean,
): void {
  if (value.serverUrl !== undefined && value.databaseUrl !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['serverUrl'], message: 'replaces databaseUrl for a whole server: give one of them', input: value.serverUrl });
  } else if (creating && value.serverUrl === undefined && value.databaseUrl === undefined) {
    ctx.addIssue({ code: 'custom', path: ['databaseUrl'], message: 'is required (or a server URL, for a whole server)', input: undefined });
  }
  const profile = value.options?.profile;
  if (value.continuous && (profile === 'server' || value.serverUrl !== undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['continuous'],
      message: 'follows one database through its logical replication slot: a whole server (the server profile) cannot be continuous; add a target per database instead',
      input: value.continuous,
    });
  }
  if (value.serverUrl !== undefined && profile !== undefined && profile !== 'server') {
    ctx.addIssue({ code: 'custom', path: ['options', 'profile'], message: `is "${profile}", but serverUrl backs up a whole server (the server profile)`, input: profile });
  }
  if (value.options?.server !== undefined && profile !== 'server' && value.serverUrl === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['options', 'server'],
      message: 'chooses the databases and globals of a whole server: it needs the server profile (serverUrl, or --server-url)',
      input: value.options.server,
    });
  }
}

export const targetCreateSchema = z
  .strictObject({ ...targetFields, name: targetNameSchema })
  .superRefine((value, ctx) => serverUrlRules(value, ctx, true))
  .meta({
    examples: [
      {
        name: 'app',
        databaseUrl: 'postgres://backup:secret@db.example.com:5432/app',
        storeUrl: 's3://backups/app?region=eu-west-1',
        options: { compression: 'zstd' },
        maxAttempts: 2,
        schedule: { cron: '0 3 * * *', timezone: 'Europe/Paris' },
        retention: { keepLast: 7, daily: 7, weekly: 4 },
        notifications: [{ kind: 'webhook', url: 'https://hooks.example.com/backstop', on: ['failed', 'timed_out'] }],
      },
    ],
  });

export const targetUpdateSchema = z
  .strictObject(targetFields)
  .superRefine((value, ctx) => {
    serverUrlRules(value, ctx, false);
    if (Object.keys(value).every((key) => key === 'checks')) {
      ctx.addIssue({ code: 'custom', message: 'changes nothing: give at least one field to change', input: value });
    }
  })
  .meta({
    description:
      'Fields to change; absent fields keep their value. `name` renames the target, `options` and `notifications` replace the whole set. With `checks` (default true), a new databaseUrl or storeUrl is checked before anything is stored.',
    examples: [
      {
        maxAttempts: 3,
        schedule: { cron: '30 2 * * *', timezone: 'UTC' },
        notifications: [{ kind: 'webhook', url: 'https://hooks.example.com/backstop', secret: 'a-shared-signing-secret', on: ['failed', 'timed_out'] }],
      },
    ],
  });

/** What a caller sends to create a target (the API's body, what the CLI builds from its flags). */
export type TargetCreateInput = z.input<typeof targetCreateSchema>;
export type TargetCreate = z.output<typeof targetCreateSchema>;
export type TargetUpdateInput = z.input<typeof targetUpdateSchema>;
export type TargetUpdateFields = z.output<typeof targetUpdateSchema>;
export type NotificationChannelInput = z.input<typeof notificationChannel>;
