import type { ChannelSettings } from '../core/channelSettings.ts';
import type { ActiveAlarm, AlarmAction, AlarmDetails, AlarmKind, TargetAlarmFacts } from '../core/alarms.ts';
import type { RunStatus } from '../core/runState.ts';
import { recoveryPointSql } from './continuousStreams.ts';
import type { Queryable } from './pool.ts';
import type { ScheduleConfig, VerificationPolicy } from './targets.ts';

// Arbitrary constant: one alarm evaluation at a time across every server and worker.
export const ALARM_LOCK_KEY = 0x616c726d; // "alrm"

const epochMs = (column: string) => `(extract(epoch from ${column}) * 1000)::float8`;

/** Every target's alarm facts, with the database clock, in one statement. */
export async function readAlarmFacts(db: Queryable): Promise<{ now: number; targets: TargetAlarmFacts[] }> {
  const { rows } = await db.query<{
    now_ms: number;
    id: string | null;
    name: string;
    paused: boolean;
    created_ms: number;
    schedule: ScheduleConfig | null;
    schedule_since_ms: number | null;
    schedule_last_slot_ms: number | null;
    max_backup_age_seconds: number | null;
    verification: VerificationPolicy | null;
    verification_since_ms: number | null;
    schedule_missed_slots: number;
    missed_after_ms: number | null;
    missed_at_ms: number | null;
    good_backup_ms: number | null;
    last_backup: { status: RunStatus; errorCode: string | null; finishedMs: number } | null;
    last_drill: { status: RunStatus; errorCode: string | null; finishedMs: number } | null;
    good_drill_ms: number | null;
    continuous: {
      state: 'starting' | 'streaming' | 'stopped';
      stoppedReason: string | null;
      stoppedMs: number | null;
      retainedWalBytes: number | null;
      measuredMs: number | null;
      slotWarnBytes: number;
      recoveryPointMs: number;
      maxRpoSeconds: number;
    } | null;
  }>(
    `select ${epochMs('n.now')} as now_ms, t.id, t.name, t.paused, ${epochMs('t.created_at')} as created_ms, t.schedule,
       ${epochMs('t.schedule_since')} as schedule_since_ms, ${epochMs('t.schedule_last_slot')} as schedule_last_slot_ms,
       t.max_backup_age_seconds, t.verification, ${epochMs('t.verification_since')} as verification_since_ms,
       t.schedule_missed_slots, ${epochMs('t.schedule_missed_after')} as missed_after_ms, ${epochMs('t.schedule_missed_at')} as missed_at_ms,
       (select ${epochMs('max(r.finished_at)')} from backstop.runs r
          where r.target_id = t.id and r.kind = 'backup' and r.status = 'succeeded' and r.finished_at is not null) as good_backup_ms,
       (select jsonb_build_object('status', r.status, 'errorCode', r.error_code, 'finishedMs', ${epochMs('r.finished_at')})
          from backstop.runs r where r.target_id = t.id and r.kind = 'backup' and r.status in ('succeeded', 'failed', 'timed_out')
            and r.finished_at is not null
          order by r.finished_at desc limit 1) as last_backup,
       (select jsonb_build_object('status', r.status, 'errorCode', r.error_code, 'finishedMs', ${epochMs('r.finished_at')})
          from backstop.runs r where r.target_id = t.id and r.kind = 'verify' and r.status in ('succeeded', 'failed', 'timed_out')
            and r.finished_at is not null
          order by r.finished_at desc limit 1) as last_drill,
       (select ${epochMs('max(r.finished_at)')} from backstop.runs r
          where r.target_id = t.id and r.kind = 'verify' and r.status = 'succeeded' and r.finished_at is not null) as good_drill_ms,
       (select jsonb_build_object('state', s.state, 'stoppedReason', s.stopped_reason, 'stoppedMs', ${epochMs('s.stopped_at')},
           'retainedWalBytes', s.retained_wal_bytes, 'measuredMs', ${epochMs('s.last_pass_at')}, 'slotWarnBytes', t.slot_warn_bytes,
           'recoveryPointMs', ${epochMs(recoveryPointSql)}, 'maxRpoSeconds', t.max_rpo_seconds)
          from backstop.continuous_streams s where s.target_id = t.id and t.continuous) as continuous
     from (select now() as now) n left join backstop.targets t on true
     order by t.name`,
  );
  const ms = (value: number | null) => (value === null ? null : Math.floor(value));
  const finished = (run: { status: RunStatus; errorCode: string | null; finishedMs: number } | null) =>
    run ? { status: run.status, errorCode: run.errorCode, finishedAt: Math.floor(run.finishedMs) } : null;
  return {
    now: ms(rows[0]!.now_ms)!,
    targets: rows
      .filter((row) => row.id !== null)
      .map((row) => ({
        targetId: row.id!,
        targetName: row.name,
        paused: row.paused,
        createdAt: ms(row.created_ms)!,
        schedule: row.schedule,
        scheduleSince: ms(row.schedule_since_ms),
        scheduleLastSlot: ms(row.schedule_last_slot_ms),
        maxBackupAgeMs: row.max_backup_age_seconds === null ? null : row.max_backup_age_seconds * 1000,
        drillSchedule: row.verification?.cron ? { cron: row.verification.cron, timezone: row.verification.timezone ?? row.schedule?.timezone ?? 'UTC' } : null,
        drillSince: ms(row.verification_since_ms),
        missedSlots: row.schedule_missed_slots,
        missedAfter: ms(row.missed_after_ms),
        missedAt: ms(row.missed_at_ms),
        newestGoodBackupAt: ms(row.good_backup_ms),
        lastFinishedBackup: finished(row.last_backup),
        lastFinishedDrill: finished(row.last_drill),
        newestGoodDrillAt: ms(row.good_drill_ms),
        continuous: row.continuous
          ? {
              state: row.continuous.state,
              stoppedReason: row.continuous.stoppedReason,
              stoppedAt: ms(row.continuous.stoppedMs),
              retainedWalBytes: row.continuous.retainedWalBytes,
              measuredAt: ms(row.continuous.measuredMs),
              slotWarnBytes: Number(row.continuous.slotWarnBytes),
              recoveryPoint: Math.floor(row.continuous.recoveryPointMs),
              maxRpoMs: row.continuous.maxRpoSeconds * 1000,
            }
          : null,
      })),
  };
}

/** An alarm as shown to people: the API, the CLI, the dashboard. */
export interface AlarmRecord {
  id: number;
  targetId: string;
  targetName: string;
  kind: AlarmKind;
  since: string;
  what: string;
  whatToDo: string;
  raisedAt: string;
  lastSentAt: string;
  sentCount: number;
  clearedAt: string | null;
}

interface AlarmRow {
  id: number;
  target_id: string;
  target_name: string;
  kind: AlarmKind;
  since: string;
  details: AlarmDetails;
  raised_at: string;
  last_sent_at: string;
  sent_count: number;
  cleared_at: string | null;
}

function toRecord(row: AlarmRow): AlarmRecord {
  return {
    id: row.id,
    targetId: row.target_id,
    targetName: row.target_name,
    kind: row.kind,
    since: row.since,
    what: row.details.what,
    whatToDo: row.details.whatToDo,
    raisedAt: row.raised_at,
    lastSentAt: row.last_sent_at,
    sentCount: row.sent_count,
    clearedAt: row.cleared_at,
  };
}

/** Active alarms, of one target or all, oldest first. */
export async function listActiveAlarms(db: Queryable, filter: { targetId?: string } = {}): Promise<AlarmRecord[]> {
  const { rows } = await db.query<AlarmRow>(
    `select a.*, t.name as target_name from backstop.alarms a join backstop.targets t on t.id = a.target_id
     where a.cleared_at is null and ($1::uuid is null or a.target_id = $1)
     order by a.since, a.id`,
    [filter.targetId ?? null],
  );
  return rows.map(toRecord);
}

/** Active alarms for the planner (epoch ms). */
export async function readActiveAlarms(db: Queryable): Promise<ActiveAlarm[]> {
  const { rows } = await db.query<{ id: number; target_id: string; kind: AlarmKind; since_ms: number; last_sent_ms: number; sent_count: number }>(
    `select id, target_id, kind, ${epochMs('since')} as since_ms, ${epochMs('last_sent_at')} as last_sent_ms, sent_count
     from backstop.alarms where cleared_at is null`,
  );
  return rows.map((row) => ({
    id: row.id,
    targetId: row.target_id,
    kind: row.kind,
    since: Math.floor(row.since_ms),
    lastSentAt: Math.floor(row.last_sent_ms),
    sentCount: row.sent_count,
  }));
}

/**
 * Applies one planned action and hands its message to the outbox, in the caller's transaction.
 * Every write is conditional (a unique active key, `cleared_at is null`), so an action another
 * evaluator already applied does nothing and sends nothing. Answers the alarm as sent, or null.
 */
export async function applyAlarmAction(db: Queryable, action: AlarmAction, link: (targetName: string) => string | null): Promise<AlarmRecord | null> {
  let row: AlarmRow | undefined;
  if (action.type === 'raise') {
    ({
      rows: [row],
    } = await db.query<AlarmRow>(
      `with inserted as (
         insert into backstop.alarms (target_id, kind, since, details) values ($1, $2, $3, $4::jsonb)
         on conflict (target_id, kind) where cleared_at is null do nothing returning *
       ) select i.*, t.name as target_name from inserted i join backstop.targets t on t.id = i.target_id`,
      [action.targetId, action.kind, new Date(action.since).toISOString(), JSON.stringify(action.details)],
    ));
  } else if (action.type === 'repeat') {
    ({
      rows: [row],
    } = await db.query<AlarmRow>(
      `with updated as (
         update backstop.alarms set last_sent_at = now(), sent_count = sent_count + 1,
           details = case when $2::jsonb->>'what' = '' then details else $2::jsonb end
         where id = $1 and cleared_at is null and sent_count = $3 returning *
       ) select u.*, t.name as target_name from updated u join backstop.targets t on t.id = u.target_id`,
      // Conditional on the count the plan saw: a repeat another evaluator already sent is not sent again.
      [action.alarmId, JSON.stringify(action.details), action.sentCount],
    ));
  } else {
    ({
      rows: [row],
    } = await db.query<AlarmRow>(
      `with updated as (
         update backstop.alarms set cleared_at = now() where id = $1 and cleared_at is null returning *
       ) select u.*, t.name as target_name from updated u join backstop.targets t on t.id = u.target_id`,
      [action.alarmId],
    ));
    // The missed slots were told and are over: count afresh from here.
    if (row && action.kind === 'slot_missed') {
      await db.query('update backstop.targets set schedule_missed_slots = 0, schedule_missed_after = null, schedule_missed_at = null where id = $1', [action.targetId]);
    }
  }
  if (!row) return null;
  const alarm = toRecord(row);
  await db.query('select backstop.enqueue_alarm_notification($1, $2, $3::jsonb)', [
    alarm.targetId,
    action.type === 'clear' ? 'alarm_cleared' : 'alarm',
    JSON.stringify(alarmPayload(alarm, link(alarm.targetName))),
  ]);
  return alarm;
}

/** The outbox payload of an alarm: the structured fields every channel renders. */
export function alarmPayload(alarm: AlarmRecord, link: string | null): Record<string, unknown> {
  return {
    target: { id: alarm.targetId, name: alarm.targetName },
    alarm: {
      id: alarm.id,
      kind: alarm.kind,
      what: alarm.what,
      since: alarm.since,
      whatToDo: alarm.whatToDo,
      link,
      raisedAt: alarm.raisedAt,
      lastSentAt: alarm.lastSentAt,
      sentCount: alarm.sentCount,
      clearedAt: alarm.clearedAt,
    },
    at: new Date().toISOString(),
  };
}

/**
 * Every channel of any target that listens to `alarm`, with its URL and secret, once each:
 * what a worker keeps in memory to tell people when the catalog itself is out of reach.
 */
export async function listAlarmChannels(db: Queryable): Promise<{ id: string; settings: ChannelSettings }[]> {
  // A shared channel's settings come from backstop.channels; one channel many targets use is told once.
  const { rows } = await db.query<{ id: string; settings: ChannelSettings }>(
    `select distinct on (settings) id, settings from (
       select ch.value->>'id' as id, coalesce(sc.settings, ch.value - 'id' - 'on') as settings
       from backstop.targets t
       cross join lateral jsonb_array_elements(case when jsonb_typeof(t.notifications) = 'array' then t.notifications else '[]'::jsonb end) ch
       left join backstop.channels sc on ch.value->>'kind' = 'shared' and sc.name = ch.value->>'channel'
       where coalesce(ch.value->'on', '[]'::jsonb) ? 'alarm' and (ch.value->>'kind' is distinct from 'shared' or sc.id is not null)
     ) channels`,
  );
  return rows;
}
