import { channelSettingsView, type ChannelSettings, type ChannelSettingsView } from '../core/channelSettings.ts';
import { BackstopError } from '../core/errors.ts';
import { pgErrorCode, pgErrorCodes } from '../core/pgErrors.ts';
import type { Queryable } from './pool.ts';

/** How a channel's deliveries are going. `failingSince` set: it is failing. */
export interface ChannelHealth {
  lastDeliveredAt: string | null;
  failingSince: string | null;
  /** Failed attempts in a row. */
  failures: number;
  /** What went wrong last (never a URL, token or password). */
  lastError: string | null;
  lastErrorAt: string | null;
}

/** A shared channel with its secrets: for the notifier and the operations only. */
export interface SharedChannelWithSecrets {
  id: string;
  name: string;
  settings: ChannelSettings;
  createdAt: string;
  updatedAt: string;
}

/** A shared channel as shown: no secret, which targets use it, and how it is doing. */
export interface SharedChannelRecord {
  id: string;
  name: string;
  kind: ChannelSettings['kind'];
  settings: ChannelSettingsView;
  usedBy: string[];
  health: ChannelHealth;
  createdAt: string;
  updatedAt: string;
}

interface ChannelRow {
  id: string;
  name: string;
  settings: ChannelSettings;
  created_at: string;
  updated_at: string;
}

interface HealthRow {
  last_delivered_at: string | null;
  failing_since: string | null;
  failures: number | null;
  last_error: string | null;
  last_error_at: string | null;
}

export const noHealth: ChannelHealth = { lastDeliveredAt: null, failingSince: null, failures: 0, lastError: null, lastErrorAt: null };

export function healthOf(row: Partial<HealthRow> | null | undefined): ChannelHealth {
  if (!row) return noHealth;
  return {
    lastDeliveredAt: row.last_delivered_at ?? null,
    failingSince: row.failing_since ?? null,
    failures: row.failures ?? 0,
    lastError: row.last_error ?? null,
    lastErrorAt: row.last_error_at ?? null,
  };
}

/** The health key of a shared channel, or of a target's own channel. */
export function channelHealthKey(channel: { sharedChannelId: string } | { targetId: string; channelId: string }): string {
  return 'sharedChannelId' in channel ? `shared:${channel.sharedChannelId}` : `target:${channel.targetId}:${channel.channelId}`;
}

function channelNotFound(name: string): BackstopError {
  return new BackstopError(
    'CHANNEL_NOT_FOUND',
    `No notification channel named "${name}". List them with \`backstop channel list\`; add one with \`backstop channel add NAME --kind KIND …\`.`,
  );
}

/** Targets whose notifications use shared channel `name`. */
const usersSql = `select coalesce(array_agg(t.name order by t.name), '{}') from backstop.targets t
  where jsonb_typeof(t.notifications) = 'array'
    and t.notifications @> jsonb_build_array(jsonb_build_object('kind', 'shared', 'channel', c.name))`;

const recordSql = `select c.*, (${usersSql}) as used_by, h.last_delivered_at, h.failing_since, h.failures, h.last_error, h.last_error_at
  from backstop.channels c left join backstop.channel_health h on h.key = 'shared:' || c.id`;

function toRecord(row: ChannelRow & HealthRow & { used_by: string[] }): SharedChannelRecord {
  return {
    id: row.id,
    name: row.name,
    kind: row.settings.kind,
    settings: channelSettingsView(row.settings),
    usedBy: row.used_by,
    health: healthOf(row),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function listSharedChannels(db: Queryable): Promise<SharedChannelRecord[]> {
  const { rows } = await db.query<ChannelRow & HealthRow & { used_by: string[] }>(`${recordSql} order by c.name`);
  return rows.map(toRecord);
}

export async function showSharedChannel(db: Queryable, name: string): Promise<SharedChannelRecord> {
  const { rows } = await db.query<ChannelRow & HealthRow & { used_by: string[] }>(`${recordSql} where c.name = $1`, [name]);
  if (!rows[0]) throw channelNotFound(name);
  return toRecord(rows[0]);
}

export async function getSharedChannelWithSecrets(db: Queryable, name: string, options: { forUpdate?: boolean } = {}): Promise<SharedChannelWithSecrets> {
  const { rows } = await db.query<ChannelRow>(`select * from backstop.channels where name = $1${options.forUpdate ? ' for update' : ''}`, [name]);
  const row = rows[0];
  if (!row) throw channelNotFound(name);
  return { id: row.id, name: row.name, settings: row.settings, createdAt: row.created_at, updatedAt: row.updated_at };
}

/** The names among `names` that are not shared channels. */
export async function missingSharedChannels(db: Queryable, names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const { rows } = await db.query<{ name: string }>('select n as name from unnest($1::text[]) n where not exists (select 1 from backstop.channels c where c.name = n)', [names]);
  return rows.map((row) => row.name);
}

export async function insertSharedChannel(db: Queryable, input: { name: string; settings: ChannelSettings }): Promise<void> {
  try {
    await db.query('insert into backstop.channels (name, settings) values ($1, $2::jsonb)', [input.name, JSON.stringify(input.settings)]);
  } catch (error) {
    if (pgErrorCode(error) === pgErrorCodes.UNIQUE_VIOLATION) {
      throw new BackstopError('CHANNEL_EXISTS', `A notification channel named "${input.name}" already exists. Pick another name, or change it with \`backstop channel update\`.`, {
        field: 'name',
      });
    }
    throw error;
  }
}

export async function replaceSharedChannelSettings(db: Queryable, name: string, settings: ChannelSettings): Promise<void> {
  const { rowCount } = await db.query('update backstop.channels set settings = $2::jsonb, updated_at = now() where name = $1', [name, JSON.stringify(settings)]);
  if (!rowCount) throw channelNotFound(name);
}

/**
 * Deletes shared channel `name` unless a target uses it, in one statement (a target that
 * starts using it meanwhile keeps it, and the refusal names the users).
 */
export async function deleteSharedChannel(db: Queryable, name: string): Promise<void> {
  const { rows } = await db.query<{ deleted: boolean; used_by: string[] | null }>(
    `with wanted as (select c.*, (${usersSql}) as used_by from backstop.channels c where c.name = $1 for update),
     gone as (delete from backstop.channels c using wanted w where c.id = w.id and cardinality(w.used_by) = 0 returning c.id)
     select exists (select 1 from gone) as deleted, (select used_by from wanted) as used_by`,
    [name],
  );
  const row = rows[0]!;
  if (row.used_by === null) throw channelNotFound(name);
  if (!row.deleted) {
    throw new BackstopError(
      'CHANNEL_IN_USE',
      `Channel "${name}" is used by target(s) ${row.used_by.join(', ')}. Remove it from them first (\`backstop target update NAME --clear-notifications\`, or the target's form), then remove the channel.`,
    );
  }
}

/** Records the outcome of one attempt on a channel (a delivery or a test). */
export async function recordChannelOutcome(db: Queryable, input: { key: string; targetId: string | null; sharedChannelId: string | null; error: string | null }): Promise<void> {
  await db.query(
    `insert into backstop.channel_health as h (key, target_id, shared_channel_id, last_delivered_at, failing_since, failures, last_error, last_error_at)
     values ($1, $2, $3, case when $4::text is null then now() end, case when $4::text is not null then now() end,
             case when $4::text is null then 0 else 1 end, $4, case when $4::text is not null then now() end)
     on conflict (key) do update set
       last_delivered_at = case when $4::text is null then now() else h.last_delivered_at end,
       failing_since = case when $4::text is null then null else coalesce(h.failing_since, now()) end,
       failures = case when $4::text is null then 0 else h.failures + 1 end,
       last_error = coalesce($4, h.last_error),
       last_error_at = case when $4::text is null then h.last_error_at else now() end`,
    [input.key, input.targetId, input.sharedChannelId, input.error === null ? null : input.error.slice(0, 2000)],
  );
}

/** The health of a target's own channels, by channel id. */
export async function targetChannelHealth(db: Queryable, targetId: string): Promise<Map<string, ChannelHealth>> {
  const { rows } = await db.query<HealthRow & { key: string }>('select * from backstop.channel_health where target_id = $1', [targetId]);
  const prefix = `target:${targetId}:`;
  return new Map(rows.filter((row) => row.key.startsWith(prefix)).map((row) => [row.key.slice(prefix.length), healthOf(row)]));
}

/** The health of shared channels, by name. */
export async function sharedChannelHealth(db: Queryable, names: readonly string[]): Promise<Map<string, ChannelHealth>> {
  if (names.length === 0) return new Map();
  const { rows } = await db.query<HealthRow & { name: string }>(
    `select c.name, h.* from backstop.channels c join backstop.channel_health h on h.key = 'shared:' || c.id where c.name = any($1::text[])`,
    [names],
  );
  return new Map(rows.map((row) => [row.name, healthOf(row)]));
}
