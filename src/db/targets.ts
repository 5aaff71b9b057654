import { channelSettingsView, type ChannelSettings, type ChannelSettingsView } from '../core/channelSettings.ts';
import type { ChannelHealth } from './channels.ts';
import type { BackupProfile } from '../core/manifest.ts';
import type { ServerOptions } from '../core/serverDatabases.ts';
import { databaseLocation, type DatabaseLocation } from '../core/databaseUrl.ts';
import { slotNameFor } from '../core/changeSegment.ts';
import { BackstopError } from '../core/errors.ts';
import { assertTargetName } from '../core/targetName.ts';
import { activeStatuses } from '../core/runState.ts';
import { pgErrorCode, pgErrorCodes } from '../core/pgErrors.ts';
import type { Queryable } from './pool.ts';

export interface TargetOptions {
  /** zstd, zstd:LEVEL, gzip, gzip:LEVEL or none. */
  compression?: string;
  encryptTo?: string[];
  profile?: BackupProfile;
  /** Record per-table content checksums at dump time, for `verify --checksums`. */
  checksums?: boolean;
  /** Server profile: which databases, which globals, how many at once. */
  server?: ServerOptions;
  /** Default profile: pg_dump streams of the one database at once, from one snapshot. */
  jobs?: number;
  [key: string]: unknown;
}

export interface ScheduleConfig {
  cron: string;
  timezone: string;
}

/** Grandfather-father-son retention; absent fields keep nothing extra by that rule. */
export interface RetentionConfig {
  keepLast?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
}

export interface VerificationPolicy {
  everyNth?: number;
  cron?: string;
  timezone?: string;
  checksums?: boolean;
}

export type NotificationEvent = 'failed' | 'timed_out' | 'succeeded' | 'recovered' | 'cancelled' | 'verify_failed' | 'alarm';

/** A target's use of a shared, named channel (backstop.channels), with the events it wants. */
export interface SharedChannelUse {
  id: string;
  kind: 'shared';
  /** The shared channel's name. */
  channel: string;
  on: NotificationEvent[];
}

/** A notification channel of a target: its own settings (secrets included: never returned), or a shared one's name. */
export type NotificationChannel = (ChannelSettings & { id: string; on: NotificationEvent[] }) | SharedChannelUse;

/** What is shown of a channel: no URL, token, password or secret. */
export interface NotificationChannelView {
  id: string;
  kind: ChannelSettings['kind'] | 'shared';
  on: NotificationEvent[];
  /** A webhook whose deliveries are signed. */
  signed: boolean;
  /** The shared channel's name (kind `shared`). */
  channel?: string;
  /** Its settings but the secrets (a target's own channel). */
  settings?: ChannelSettingsView;
  /** How its deliveries are going (when shown with one target). */
  health?: ChannelHealth;
}

/** The view of a stored channel. */
export function notificationChannelView(channel: NotificationChannel): NotificationChannelView {
  if (channel.kind === 'shared') return { id: channel.id, kind: 'shared', on: channel.on, signed: false, channel: channel.channel };
  const { id, on, ...settings } = channel;
  return { id, kind: channel.kind, on, signed: channel.kind === 'webhook' && Boolean(channel.secret), settings: channelSettingsView(settings) };
}

export interface GithubExecutorConfig {
  kind: 'github';
  owner: string;
  repo: string;
  workflow: string;
  ref: string;
}

/** A continuous target's settings (migration 021); its stream's state is `continuous_streams`'. */
export interface ContinuousSettings {
  /** The replication slot, and the publication of the same name. */
  slot: string;
  /** `schema.table` to follow; null: every table it can follow safely. */
  tables: string[] | null;
  segmentSeconds: number;
  segmentBytes: number;
  slotWarnBytes: number;
  slotLimitBytes: number;
  maxRpoSeconds: number;
}

/** A target as shown to users: the database URL and channel URLs are secrets and never part of it. */
export interface TargetRecord {
  id: string;
  name: string;
  storeUrl: string;
  options: TargetOptions;
  exclusive: boolean;
  maxAttempts: number;
  schedule: ScheduleConfig | null;
  retention: RetentionConfig | null;
  verification: VerificationPolicy | null;
  notifications: NotificationChannelView[];
  executor: GithubExecutorConfig | null;
  /** No scheduled backups or drills while paused; manual runs still work. */
  paused: boolean;
  /** The bound on the newest good backup's age, seconds; null: derived from the schedule. */
  maxBackupAge: number | null;
  /** Whether a heartbeat ping URL is set (the URL is a secret, never shown). */
  ping: boolean;
  /** Which database it backs up, from its URL: never the password or query parameters. Null without a URL (made by `import`). */
  database: DatabaseLocation | null;
  /** Continuous backup's settings, or null when the target is backed up by its dumps only. */
  continuous: ContinuousSettings | null;
  createdAt: string;
  updatedAt: string;
}

/** A target with its secrets, for the runner and the notifier only. */
export interface TargetWithSecret extends TargetRecord {
  databaseUrl: string;
  notificationChannels: NotificationChannel[];
}

interface TargetRow {
  id: string;
  /** The slot of the target's stream row (see STREAM_SLOT), when it has one. */
  stream_slot?: string | null;
  name: string;
  database_url: string;
  store_url: string;
  options: TargetOptions;
  exclusive: boolean;
  max_attempts: number;
  schedule: ScheduleConfig | null;
  retention: RetentionConfig | null;
  verification: VerificationPolicy | null;
  notifications: NotificationChannel[];
  executor_config: GithubExecutorConfig | null;
  paused: boolean;
  max_backup_age_seconds: number | null;
  ping_url: string | null;
  continuous: boolean;
  continuous_tables: string[] | null;
  segment_seconds: number;
  segment_bytes: number;
  slot_warn_bytes: number;
  slot_limit_bytes: number;
  max_rpo_seconds: number;
  created_at: string;
  updated_at: string;
}

/**
 * The slot a continuous target streams: its stream row's, named when continuity was turned on
 * (see operations/targets/continuity.ts: each time anew after the first). Every read of a
 * target selects it beside the row (`t` is the targets table).
 */
const STREAM_SLOT = '(select s.slot_name from backstop.continuous_streams s where s.target_id = t.id) as stream_slot';

function toRecord(row: TargetRow): TargetRecord {
  return {
    id: row.id,
    name: row.name,
    storeUrl: row.store_url,
    options: row.options,
    exclusive: row.exclusive,
    maxAttempts: row.max_attempts,
    schedule: row.schedule,
    retention: row.retention,
    verification: row.verification,
    notifications: (Array.isArray(row.notifications) ? row.notifications : []).map(notificationChannelView),
    executor: row.executor_config,
    paused: row.paused,
    maxBackupAge: row.max_backup_age_seconds,
    ping: row.ping_url !== null,
    database: databaseLocation(row.database_url),
    continuous: row.continuous
      ? {
          slot: row.stream_slot ?? slotNameFor(row.id),
          tables: row.continuous_tables,
          segmentSeconds: row.segment_seconds,
          segmentBytes: Number(row.segment_bytes),
          slotWarnBytes: Number(row.slot_warn_bytes),
          slotLimitBytes: Number(row.slot_limit_bytes),
          maxRpoSeconds: row.max_rpo_seconds,
        }
      : null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export interface NewTarget {
  /** Chosen by the caller when it must be known before the row exists (a continuous target's slot is named after it). */
  id?: string;
  name: string;
  databaseUrl: string;
  storeUrl: string;
  options?: TargetOptions;
  exclusive?: boolean;
  maxAttempts?: number;
  schedule?: ScheduleConfig | null;
  retention?: RetentionConfig | null;
  verification?: VerificationPolicy | null;
  notifications?: NotificationChannel[];
  executor?: GithubExecutorConfig | null;
  paused?: boolean;
  /** Seconds; null: derived from the schedule. */
  maxBackupAge?: number | null;
  /** A secret, like the channel URLs. */
  pingUrl?: string | null;
}

export async function createTarget(db: Queryable, input: NewTarget): Promise<TargetRecord> {
  assertTargetName(input.name);
  try {
    const { rows } = await db.query<TargetRow>(
      `insert into backstop.targets as t (name, database_url, store_url, options, exclusive, max_attempts,
         schedule, retention, verification, notifications, executor_config, paused, max_backup_age_seconds, ping_url, id)
       values ($1, $2, $3, $4::jsonb, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10::jsonb, $11::jsonb, $12, $13, $14, coalesce($15::uuid, gen_random_uuid())) returning t.*, ${STREAM_SLOT}`,
      [
        input.name,
        input.databaseUrl,
        input.storeUrl,
        JSON.stringify(input.options ?? {}),
        input.exclusive ?? true,
        input.maxAttempts ?? 1,
        json(input.schedule),
        json(input.retention),
        json(input.verification),
        JSON.stringify(input.notifications ?? []),
        json(input.executor),
        input.paused ?? false,
        input.maxBackupAge ?? null,
        input.pingUrl ?? null,
        input.id ?? null,
      ],
    );
    return toRecord(rows[0]!);
  } catch (error) {
    if (pgErrorCode(error) === pgErrorCodes.UNIQUE_VIOLATION) {
      throw new BackstopError('TARGET_EXISTS', `A target named "${input.name}" already exists. Pick another name or use the existing one.`, { field: 'name' });
    }
    throw error;
  }
}

function json(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

export function targetNotFound(name: string): BackstopError {
  return new BackstopError('TARGET_NOT_FOUND', `No target named "${name}". List targets with \`backstop target list\`.`);
}

async function findTargetRow(db: Queryable, name: string): Promise<TargetRow | undefined> {
  const { rows } = await db.query<TargetRow>(`select t.*, ${STREAM_SLOT} from backstop.targets t where name = $1`, [name]);
  return rows[0];
}

export async function getTarget(db: Queryable, name: string): Promise<TargetRecord> {
  const row = await findTargetRow(db, name);
  if (!row) throw targetNotFound(name);
  return toRecord(row);
}

/** The target of that name with its secrets, or null. */
export async function findTargetWithSecret(db: Queryable, name: string): Promise<TargetWithSecret | null> {
  const row = await findTargetRow(db, name);
  return row ? { ...toRecord(row), databaseUrl: row.database_url, notificationChannels: row.notifications ?? [] } : null;
}

export async function getTargetWithSecret(db: Queryable, targetId: string): Promise<TargetWithSecret> {
  const { rows } = await db.query<TargetRow>(`select t.*, ${STREAM_SLOT} from backstop.targets t where id = $1`, [targetId]);
  const row = rows[0];
  if (!row) throw new BackstopError('TARGET_NOT_FOUND', `Target ${targetId} no longer exists.`);
  return { ...toRecord(row), databaseUrl: row.database_url, notificationChannels: row.notifications ?? [] };
}

export async function listTargets(db: Queryable): Promise<TargetRecord[]> {
  const { rows } = await db.query<TargetRow>(`select t.*, ${STREAM_SLOT} from backstop.targets t order by name`);
  return rows.map(toRecord);
}

/**
 * For one-shot `backstop backup`: reuse the target of that name when it points at the same
 * database, create it when it does not exist, refuse when the name is taken by another one.
 */
export async function ensureTarget(db: Queryable, input: NewTarget): Promise<TargetRecord> {
  const existing = await findTargetRow(db, input.name);
  if (existing) {
    if (existing.database_url !== input.databaseUrl) {
      throw new BackstopError('TARGET_EXISTS', `Target "${input.name}" already exists for another database. Pass --target NAME to back this one up under a different name.`);
    }
    return toRecord(existing);
  }
  try {
    return await createTarget(db, input);
  } catch (error) {
    // Another process registered it between our read and our insert.
    if (error instanceof BackstopError && error.code === 'TARGET_EXISTS') return ensureTarget(db, input);
    throw error;
  }
}

/** The target with its secrets, row-locked until the caller's transaction ends (read-modify-write updates). */
export async function lockTargetForUpdate(db: Queryable, name: string): Promise<TargetWithSecret> {
  const { rows } = await db.query<TargetRow>(`select t.*, ${STREAM_SLOT} from backstop.targets t where name = $1 for update`, [name]);
  const row = rows[0];
  if (!row) throw targetNotFound(name);
  return { ...toRecord(row), databaseUrl: row.database_url, notificationChannels: row.notifications ?? [] };
}

/** Fields to change; absent fields keep their value, `null` clears a nullable one. */
export type TargetUpdate = Partial<Omit<NewTarget, 'id'>>;

const updatableColumns: Record<Exclude<keyof NewTarget, 'id'>, { column: string; encode: (value: unknown) => unknown; cast?: string }> = {
  name: { column: 'name', encode: (value) => value },
  databaseUrl: { column: 'database_url', encode: (value) => value },
  storeUrl: { column: 'store_url', encode: (value) => value },
  options: { column: 'options', encode: (value) => JSON.stringify(value ?? {}), cast: 'jsonb' },
  exclusive: { column: 'exclusive', encode: (value) => value },
  maxAttempts: { column: 'max_attempts', encode: (value) => value },
  schedule: { column: 'schedule', encode: json, cast: 'jsonb' },
  retention: { column: 'retention', encode: json, cast: 'jsonb' },
  verification: { column: 'verification', encode: json, cast: 'jsonb' },
  notifications: { column: 'notifications', encode: (value) => JSON.stringify(value ?? []), cast: 'jsonb' },
  executor: { column: 'executor_config', encode: json, cast: 'jsonb' },
  paused: { column: 'paused', encode: (value) => value },
  maxBackupAge: { column: 'max_backup_age_seconds', encode: (value) => value },
  pingUrl: { column: 'ping_url', encode: (value) => value },
};

/** Changes some fields of a target (a rename included). Runs already queued keep their settings. */
export async function updateTarget(db: Queryable, name: string, update: TargetUpdate): Promise<TargetRecord> {
  if (update.name !== undefined) assertTargetName(update.name);
  const assignments: string[] = [];
  const values: unknown[] = [name];
  for (const [key, spec] of Object.entries(updatableColumns) as [keyof typeof updatableColumns, (typeof updatableColumns)[keyof typeof updatableColumns]][]) {
    if (update[key] === undefined) continue;
    values.push(spec.encode(update[key]));
    // Column names come from the fixed table above, never from the caller.
    assignments.push(`${spec.column} = $${values.length}${spec.cast ? `::${spec.cast}` : ''}`);
  }
  assignments.push('updated_at = now()');
  try {
    const { rows } = await db.query<TargetRow>(`update backstop.targets as t set ${assignments.join(', ')} where name = $1 returning t.*, ${STREAM_SLOT}`, values);
    const row = rows[0];
    if (!row) throw targetNotFound(name);
    return toRecord(row);
  } catch (error) {
    if (pgErrorCode(error) === pgErrorCodes.UNIQUE_VIOLATION) {
      throw new BackstopError('TARGET_EXISTS', `A target named "${update.name}" already exists. Pick another name.`, { field: 'name' });
    }
    throw error;
  }
}

/** A backup that stays in its store when its target is deleted. */
export interface KeptBackup {
  runId: string;
  storeUrl: string;
  prefix: string;
  finishedAt: string;
  /** The artifact's files and manifest together. */
  sizeBytes: number;
}

/**
 * Deletes a target and its finished runs (their rows, not their backups in the store), and
 * answers the backups that stay behind so a person knows where they are. Refused while the
 * target has a run that is not terminal: deleting it would pull the row from under its runner.
 * One statement: the target row is locked first, so no run can be created for it meanwhile.
 */
export async function deleteTarget(db: Queryable, name: string): Promise<{ storeUrl: string; keptBackups: KeptBackup[] }> {
  const { rows } = await db.query<{ id: string | null; active: number; found: number; store_url: string | null; kept: KeptBackup[] | null }>(
    `with target as (
       select id, store_url from backstop.targets where name = $1 for update
     ), active as (
       select count(*)::int as active from backstop.runs r join target on r.target_id = target.id where r.status = any($2::text[])
     ), kept as (
       select r.id, r.artifact, r.finished_at from backstop.runs r join target on r.target_id = target.id
       where r.kind = 'backup' and r.status = 'succeeded' and r.artifact is not null and r.pruned_at is null
     ), deleted as (
       delete from backstop.targets t using target, active where t.id = target.id and active.active = 0 returning t.id
     )
     select (select id from deleted) as id, (select active from active) as active, (select count(*) from target)::int as found,
       (select store_url from target) as store_url,
       (select jsonb_agg(jsonb_build_object(
          'runId', k.id, 'storeUrl', k.artifact->>'storeUrl', 'prefix', k.artifact->>'prefix', 'finishedAt', backstop.iso_utc(k.finished_at),
          'sizeBytes', coalesce((k.artifact->'manifest'->>'size')::bigint, 0)
            + coalesce((select sum((f->>'size')::bigint) from jsonb_array_elements(k.artifact->'files') f), 0))
          order by k.finished_at desc, k.id)
        from kept k) as kept`,
    [name, activeStatuses],
  );
  const row = rows[0];
  if (!row || row.found === 0) throw targetNotFound(name);
  if (row.id === null) {
    throw new BackstopError('TARGET_BUSY', `Target "${name}" has ${row.active} run(s) not finished yet. Cancel them (or wait for them to end), then delete the target.`);
  }
  return { storeUrl: row.store_url!, keptBackups: (row.kept ?? []).map((backup) => ({ ...backup, sizeBytes: Number(backup.sizeBytes) })) };
}

/** Deletes a target by id, with its runs, unless one of them is active; whether it was deleted. */
export async function deleteTargetById(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `delete from backstop.targets t where t.id = $1
       and not exists (select 1 from backstop.runs r where r.target_id = t.id and r.status = any($2::text[]))`,
    [id, activeStatuses],
  );
  return (rowCount ?? 0) > 0;
}

export interface TargetPolicyPatch {
  /** Replace (null: remove); absent: unchanged. */
  schedule?: ScheduleConfig | null;
  retention?: RetentionConfig | null;
  verification?: VerificationPolicy | null;
  /** Channels appended to the target's list. */
  addChannels?: NotificationChannel[];
  /** Remove every channel (before appending `addChannels`). */
  clearChannels?: boolean;
}

/**
 * Changes a target's schedule, retention, verification policy or notification channels in one
 * statement (channels are appended in SQL, so two concurrent updates do not lose each other's).
 */
export async function updateTargetPolicies(db: Queryable, name: string, patch: TargetPolicyPatch): Promise<TargetRecord> {
  const { rows } = await db.query<TargetRow>(
    `update backstop.targets as t set
       schedule = case when $2 then $3::jsonb else schedule end,
       retention = case when $4 then $5::jsonb else retention end,
       verification = case when $6 then $7::jsonb else verification end,
       notifications = (case when $8 then '[]'::jsonb else notifications end) || $9::jsonb,
       updated_at = now()
     where name = $1
     returning t.*, ${STREAM_SLOT}`,
    [
      name,
      patch.schedule !== undefined,
      json(patch.schedule),
      patch.retention !== undefined,
      json(patch.retention),
      patch.verification !== undefined,
      json(patch.verification),
      patch.clearChannels ?? false,
      JSON.stringify(patch.addChannels ?? []),
    ],
  );
  const row = rows[0];
  if (!row) throw targetNotFound(name);
  return toRecord(row);
}
