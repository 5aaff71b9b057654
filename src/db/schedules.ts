import type { Queryable } from './pool.ts';
import type { ScheduleConfig, VerificationPolicy } from './targets.ts';

/** A target with a schedule or a verification policy, with what the scheduler needs to decide. */
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

/** Targets with a schedule or a verification policy, read together with the database clock. */
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
     left join backstop.targets t on t.schedule is not null or t.verification ? 'cron' or t.verification ? 'everyNth'
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

export interface ScheduledDrill {
  /** Whether this caller settled the slot (or the Nth backup): true for exactly one caller. */
  claimed: boolean;
  /** The verification run created; null when none was (not claimed, or no backup to drill). */
  runId: string | null;
  subjectRunId: string | null;
}

// The backup a drill verifies: the target's newest succeeded one that retention is not taking apart.
const newestBackup = `select r.id, r.finished_at from backstop.runs r
  where r.target_id = $1 and r.kind = 'backup' and r.status = 'succeeded' and r.artifact is not null and r.pruned_at is null
  order by coalesce(r.started_at, r.created_at) desc, r.id desc limit 1`;

const insertDrill = (claimedCte: string, message: string) => `
  inserted as (
    insert into backstop.runs (target_id, trigger, exclusive, max_attempts, deadline_at, kind, subject_run_id)
    select c.id, 'schedule', false, c.max_attempts, now() + $2 * interval '1 millisecond', 'verify', c.subject_id
    from ${claimedCte} c where c.subject_id is not null
    returning *
  ), event as (
    insert into backstop.run_events (run_id, attempt, kind, status, message)
    select id, 0, 'created', 'queued', ${message} from inserted
  ), notified as (
    select pg_notify('backstop_runs', id::text) from inserted
  )`;

/**
 * Settles one verification cron slot and queues a drill of the newest succeeded backup, in one
 * statement: exactly one scheduler settles a slot (a concurrent one waits for the row lock,
 * then sees it settled), and a slot is never settled without its drill being queued.
 */
export async function enqueueScheduledDrill(db: Queryable, input: { targetId: string; slot: number; runDeadlineMs: number }): Promise<ScheduledDrill> {
  const { rows } = await db.query<{ claimed: number; run_id: string | null; subject_id: string | null }>(
    `with subject as (${newestBackup}),
     claimed as (
       update backstop.targets t set verification_last_slot = $3::timestamptz
       where t.id = $1 and t.verification ? 'cron' and (t.verification_last_slot is null or t.verification_last_slot < $3::timestamptz)
       returning t.id, t.max_attempts, (select id from subject) as subject_id
     ), ${insertDrill('claimed', `'verification queued by the schedule for ' || backstop.iso_utc($3::timestamptz)`)}
     select (select count(*) from claimed) as claimed, (select id from inserted) as run_id,
            (select subject_id from claimed) as subject_id, (select count(*) from notified) as notified`,
    [input.targetId, input.runDeadlineMs, new Date(input.slot).toISOString()],
  );
  const row = rows[0]!;
  return { claimed: Number(row.claimed) > 0, runId: row.run_id, subjectRunId: row.subject_id };
}

/**
 * Verification every Nth backup: once N backups have succeeded since the last one drilled this
 * way (or since the policy was set), queues a drill of the newest. Exactly once per such
 * backup across schedulers: the claim is a conditional update of verification_nth_at.
 */
export async function enqueueNthDrill(db: Queryable, input: { targetId: string; everyNth: number; runDeadlineMs: number }): Promise<ScheduledDrill> {
  const { rows } = await db.query<{ claimed: number; run_id: string | null; subject_id: string | null }>(
    `with counted as (
       select r.id, r.finished_at, count(*) over () as total,
              row_number() over (order by r.finished_at desc, r.id desc) as rank
       from backstop.runs r join backstop.targets t on t.id = r.target_id
       where r.target_id = $1 and r.kind = 'backup' and r.status = 'succeeded' and r.artifact is not null and r.pruned_at is null
         and r.finished_at > coalesce(greatest(t.verification_since, t.verification_nth_at), '-infinity')
     ), due as (
       select id, finished_at from counted where rank = 1 and total >= $3
     ), claimed as (
       update backstop.targets t set verification_nth_at = due.finished_at
       from due
       where t.id = $1 and t.verification ? 'everyNth' and (t.verification_nth_at is null or t.verification_nth_at < due.finished_at)
       returning t.id, t.max_attempts, due.id as subject_id
     ), ${insertDrill('claimed', `'verification queued: every ' || $3::int || ' backups'`)}
     select (select count(*) from claimed) as claimed, (select id from inserted) as run_id,
            (select subject_id from claimed) as subject_id, (select count(*) from notified) as notified`,
    [input.targetId, input.runDeadlineMs, input.everyNth],
  );
  const row = rows[0]!;
  return { claimed: Number(row.claimed) > 0, runId: row.run_id, subjectRunId: row.subject_id };
}
