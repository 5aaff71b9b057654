import type { ChannelSettings } from '../core/channelSettings.ts';
import { channelHealthKey } from './channels.ts';
import type { Queryable } from './pool.ts';
import type { NotificationChannel } from './targets.ts';

/** One outbox row claimed for delivery, with its channel's settings (secrets: handle with care). */
export interface NotificationDelivery {
  id: number;
  runId: string | null;
  targetId: string | null;
  targetName: string | null;
  channelId: string;
  event: string;
  payload: Record<string, unknown>;
  /** Attempts including this one; the fencing value for recording its outcome. */
  attempts: number;
  createdAt: string;
  /** The settings to deliver with: the target's own channel's, or the shared channel's it names. */
  channel: ChannelSettings | null;
  /** Why `channel` is null: the channel left the target, or the shared channel is gone. */
  channelMissing: string | null;
  /** Where the outcome is recorded (see backstop.channel_health). */
  health: { key: string; targetId: string | null; sharedChannelId: string | null };
  /** For a backup's outcome: the first failure of the target's failing streak up to this run. */
  failingSince: string | null;
  /** A heartbeat ping (channel id `@ping`): the target's ping URL (a secret), null when it was removed. */
  pingUrl?: string | null;
}

/** The reserved channel id of heartbeat pings: channel ids are [A-Za-z0-9_-], so no channel can take it. */
export const PING_CHANNEL_ID = '@ping';

/** An outbox row as shown to users and tests: no channel URL or secret. */
export interface NotificationRecord {
  id: number;
  runId: string | null;
  targetId: string | null;
  channelId: string;
  event: string;
  payload: Record<string, unknown>;
  attempts: number;
  createdAt: string;
  nextAttemptAt: string;
  deliveredAt: string | null;
  failedAt: string | null;
  lastError: string | null;
}

interface NotificationRow {
  id: number;
  run_id: string | null;
  target_id: string | null;
  channel_id: string;
  event: string;
  payload: Record<string, unknown>;
  attempts: number;
  created_at: string;
  next_attempt_at: string;
  delivered_at: string | null;
  failed_at: string | null;
  last_error: string | null;
}

/**
 * Claims up to `limit` due rows for `leaseMs`: attempts is bumped and next_attempt_at pushed
 * past the lease in one statement, and the delivery then happens outside any transaction,
 * so a webhook that hangs holds no lock and no connection. FOR UPDATE SKIP LOCKED lets any
 * number of notifiers claim side by side without ever taking the same row; a notifier that
 * dies mid-delivery simply lets its lease run out and the row becomes due again.
 */
export async function claimDueNotifications(db: Queryable, input: { limit: number; leaseMs: number }): Promise<NotificationDelivery[]> {
  const { rows } = await db.query<
    NotificationRow & {
      target_name: string | null;
      channel: NotificationChannel | null;
      shared_id: string | null;
      shared_settings: ChannelSettings | null;
      failing_since: string | null;
      ping_url: string | null;
    }
  >(
    `with due as (
       select id from backstop.notifications
       where delivered_at is null and failed_at is null and next_attempt_at <= now()
         -- A target's pings go out in order (a start must not land after its success).
         and (channel_id <> '@ping' or not exists (
           select 1 from backstop.notifications p
           where p.channel_id = '@ping' and p.target_id = notifications.target_id and p.id < notifications.id
             and p.delivered_at is null and p.failed_at is null))
       order by next_attempt_at, id
       for update skip locked
       limit $1
     ), claimed as (
       update backstop.notifications n set attempts = n.attempts + 1, next_attempt_at = now() + $2 * interval '1 millisecond'
       from due where n.id = due.id
       returning n.*
     )
     select c.*, t.name as target_name, ch.value as channel, sc.id as shared_id, sc.settings as shared_settings, fs.failing_since,
            case when c.channel_id = '@ping' then t.ping_url end as ping_url
     from claimed c
     left join backstop.targets t on t.id = c.target_id
     left join lateral (
       select value from jsonb_array_elements(case when jsonb_typeof(t.notifications) = 'array' then t.notifications else '[]'::jsonb end)
       where value->>'id' = c.channel_id limit 1
     ) ch on true
     left join backstop.channels sc on ch.value->>'kind' = 'shared' and sc.name = ch.value->>'channel'
     left join backstop.runs r on r.id = c.run_id
     -- Since when the target's backups have been failing, up to this run: its streak's first
     -- failure after the last success (for a recovery, the streak it ends).
     left join lateral (
       select min(f.finished_at) as failing_since from backstop.runs f
       where c.event in ('failed', 'timed_out', 'recovered') and r.kind = 'backup' and f.target_id = r.target_id and f.kind = 'backup' and f.status in ('failed', 'timed_out')
         and f.finished_at <= r.finished_at
         and f.finished_at > coalesce((select max(s.finished_at) from backstop.runs s
                                       where s.target_id = r.target_id and s.kind = 'backup' and s.status = 'succeeded'
                                         and s.id <> r.id and s.finished_at <= r.finished_at), '-infinity')
     ) fs on true
     order by c.id`,
    [input.limit, input.leaseMs],
  );
  return rows.map((row) => {
    const entry = row.channel;
    const shared = entry?.kind === 'shared';
    let channel: ChannelSettings | null = null;
    let channelMissing: string | null = null;
    if (!entry) channelMissing = `channel ${row.channel_id} no longer exists on the target`;
    else if (entry.kind === 'shared') {
      if (row.shared_settings) channel = row.shared_settings;
      else channelMissing = `shared channel "${entry.channel}" no longer exists`;
    } else {
      const { id: _id, on: _on, ...settings } = entry;
      channel = settings;
    }
    return {
      id: row.id,
      runId: row.run_id,
      targetId: row.target_id,
      targetName: row.target_name,
      channelId: row.channel_id,
      event: row.event,
      payload: row.payload,
      attempts: row.attempts,
      createdAt: row.created_at,
      channel,
      channelMissing,
      health:
        shared && row.shared_id
          ? { key: channelHealthKey({ sharedChannelId: row.shared_id }), targetId: null, sharedChannelId: row.shared_id }
          : { key: channelHealthKey({ targetId: row.target_id ?? 'none', channelId: row.channel_id }), targetId: row.target_id, sharedChannelId: null },
      failingSince: row.failing_since,
      pingUrl: row.ping_url,
    };
  });
}

/** Records a delivery; conditional on the attempt, so a notifier whose lease ran out cannot overwrite a newer outcome. */
export async function markNotificationDelivered(db: Queryable, input: { id: number; attempts: number }): Promise<boolean> {
  const { rowCount } = await db.query(
    `update backstop.notifications set delivered_at = now(), last_error = null
     where id = $1 and attempts = $2 and delivered_at is null and failed_at is null`,
    [input.id, input.attempts],
  );
  return (rowCount ?? 0) > 0;
}

/** Records a failed attempt: retried after `retryInMs`, or given up (`final`). */
export async function markNotificationAttemptFailed(db: Queryable, input: { id: number; attempts: number; error: string; retryInMs: number; final: boolean }): Promise<boolean> {
  const { rowCount } = await db.query(
    `update backstop.notifications set last_error = $3,
       next_attempt_at = now() + $4 * interval '1 millisecond',
       failed_at = case when $5 then now() else null end
     where id = $1 and attempts = $2 and delivered_at is null and failed_at is null`,
    [input.id, input.attempts, input.error.slice(0, 2000), input.retryInMs, input.final],
  );
  return (rowCount ?? 0) > 0;
}

export async function listNotifications(db: Queryable, filter: { runId?: string; targetId?: string } = {}): Promise<NotificationRecord[]> {
  const { rows } = await db.query<NotificationRow>(
    `select * from backstop.notifications
     where ($1::uuid is null or run_id = $1) and ($2::uuid is null or target_id = $2)
     order by id`,
    [filter.runId ?? null, filter.targetId ?? null],
  );
  return rows.map((row) => ({
    id: row.id,
    runId: row.run_id,
    targetId: row.target_id,
    channelId: row.channel_id,
    event: row.event,
    payload: row.payload,
    attempts: row.attempts,
    createdAt: row.created_at,
    nextAttemptAt: row.next_attempt_at,
    deliveredAt: row.delivered_at,
    failedAt: row.failed_at,
    lastError: row.last_error,
  }));
}
