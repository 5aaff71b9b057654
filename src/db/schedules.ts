import type { Queryable } from './pool.ts';
import type { ScheduleConfig, VerificationPolicy } from './targets.ts';

/** A target with a schedule or a verification cron, with what the scheduler needs to decide. */
export interface ScheduledTarget {
  id: string;
  name: string;
  schedule: ScheduleConfig | null;
  verification: VerificationPolicy | null;
  /** Slots at or before this are settled (ms); null: none settled yet. */
  scheduleSettledAt: number | null;
  verificationSettledAt: number | null;
}

export interface ScheduledTargets {
  /** Database time when the list was read, ms. */
  now: number;
  targets: ScheduledTarget[];
}

/** Targets with a schedule or a verification cron, read together with the database clock. */
export async function listScheduledTargets(db: Queryable): Promise<ScheduledTargets> {
  const { rows } = await db.query<{
    now: string;
    id: string | null;
    name: string;
    schedule: ScheduleConfig | null;
    verification: VerificationPolicy | null;
    schedule_settled_at: string | null;
    verification_settled_at: string | null;
  }>(
    `select n.now, t.id, t.name, t.schedule, t.verification,
       greatest(t.schedule_since, t.schedule_last_slot) as schedule_settled_at,
       greatest(t.verification_since, t.verification_last_slot) as verification_settled_at
     from (select now() as now) n
     left join backstop.targets t on t.schedule is not null or t.verification ? 'cron'
     order by t.name`,
  );
  const now = Date.parse(rows[0]!.now);
  const ms = (value: string | null) => (value === null ? null : Date.parse(value));
  return {
    now,
    targets: rows
      .filter((row) => row.id !== null)
      .map((row) => ({
        id: row.id!,
        name: row.name,
        schedule: row.schedule,
        verification: row.verification,
        scheduleSettledAt: ms(row.schedule_settled_at),
        verificationSettledAt: ms(row.verification_settled_at),
      })),
  };
}

export type ScheduledRunOutcome =
  /** A run was created for the slot. */
  | { kind: 'created'; runId: string }
  /** Another scheduler created it, or a later slot is already settled. */
  | { kind: 'taken' }
  /** A scheduled run of the target is still waiting to start: the slot is settled without a run. */
  | { kind: 'waiting'; waitingRunId: string };

/**
 * Creates the run of one schedule slot, exactly once whatever the number of schedulers: the
 * unique index on runs(target_id, schedule_slot) makes a second insert of the same slot a
 * no-op (ON CONFLICT DO NOTHING; a concurrent inserter waits for the first to commit, then
 * does nothing). The slot is settled on the target in the same statement, because retention
 * may later delete the run row that carried it.
 *
 * When a scheduled run of the target is still queued or dispatched (no worker, or a long run
 * ahead of it), the slot is settled without a new run: that waiting run will take a fresh
 * backup when it starts, and a queue of stale slot runs would be a storm after the outage.
 */
export async function createScheduledRun(
  db: Queryable,
  input: { targetId: string; slot: number; runDeadlineMs: number; skipped: number },
): Promise<ScheduledRunOutcome> {
  const slot = new Date(input.slot).toISOString();
  const { rows } = await db.query<{ run_id: string | null; waiting_run_id: string | null }>(
    `with waiting as (
       select w.id from backstop.runs w
       where w.target_id = $1 and w.schedule_slot is not null and w.status in ('queued', 'dispatched')
       order by w.created_at limit 1
     ), inserted as (
       insert into backstop.runs (target_id, trigger, exclusive, max_attempts, deadline_at, schedule_slot)
       select t.id, 'schedule', t.exclusive, t.max_attempts, now() + $3 * interval '1 millisecond', $2::timestamptz
       from backstop.targets t
       where t.id = $1 and t.schedule is not null and not exists (select 1 from waiting)
         and (t.schedule_last_slot is null or t.schedule_last_slot < $2::timestamptz)
       on conflict (target_id, schedule_slot) where schedule_slot is not null do nothing
       returning *
     ), settled as (
       update backstop.targets set schedule_last_slot = $2::timestamptz
       where id = $1 and (schedule_last_slot is null or schedule_last_slot < $2::timestamptz)
       returning id
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message, data)
       select id, 0, 'created', 'queued',
              'queued by the schedule for ' || backstop.iso_utc(schedule_slot)
                || case when $4::int > 0 then ' (catch-up; ' || $4::int || ' earlier missed slot(s) skipped)' else '' end,
              jsonb_build_object('scheduleSlot', backstop.iso_utc(schedule_slot), 'skippedSlots', $4::int)
       from inserted
     ), notified as (
       select pg_notify('backstop_runs', id::text) from inserted
     )
     select (select id from inserted) as run_id, (select id from waiting) as waiting_run_id,
            (select count(*) from settled) as settled, (select count(*) from notified) as notified`,
    [input.targetId, slot, input.runDeadlineMs, input.skipped],
  );
  const row = rows[0]!;
  if (row.run_id) return { kind: 'created', runId: row.run_id };
  if (row.waiting_run_id) return { kind: 'waiting', waitingRunId: row.waiting_run_id };
  return { kind: 'taken' };
}

/**
 * Claims one verification slot of a target for this process: true for exactly one caller per
 * slot (a conditional UPDATE; a concurrent one waits for the row lock and then sees the slot
 * settled). At most once: a drill that then fails to start is not retried for that slot.
 */
export async function claimVerificationSlot(db: Queryable, input: { targetId: string; slot: number }): Promise<boolean> {
  const { rowCount } = await db.query(
    `update backstop.targets set verification_last_slot = $2
     where id = $1 and verification ? 'cron' and (verification_last_slot is null or verification_last_slot < $2)`,
    [input.targetId, new Date(input.slot).toISOString()],
  );
  return (rowCount ?? 0) > 0;
}
