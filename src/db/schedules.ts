import { pgErrorCode, pgErrorCodes } from '../core/pgErrors.ts';
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

/**
 * Targets with a schedule or a verification policy, read together with the database clock.
 * Paused targets are left out: nothing of theirs comes due (resuming settles what passed).
 * Read every second by every scheduler, for every scheduled target: the schedule comes as
 * two text columns and the instants as epoch milliseconds, which cost far less to parse than
 * jsonb and timestamptz values (10,000 targets: a third of the time).
 */
export async function listScheduledTargets(db: Queryable): Promise<ScheduledTargets> {
  const { rows } = await db.query<{
    now_ms: number;
    id: string | null;
    name: string;
    cron: string | null;
    timezone: string | null;
    verification: VerificationPolicy | null;
    schedule_settled_ms: number | null;
    verification_settled_ms: number | null;
  }>(
    `select (extract(epoch from n.now) * 1000)::float8 as now_ms, t.id, t.name, t.schedule->>'cron' as cron, t.schedule->>'timezone' as timezone,
       t.verification,
       (extract(epoch from greatest(t.schedule_since, t.schedule_last_slot)) * 1000)::float8 as schedule_settled_ms,
       (extract(epoch from greatest(t.verification_since, t.verification_last_slot)) * 1000)::float8 as verification_settled_ms
     from (select now() as now) n
     left join backstop.targets t on (t.schedule is not null or t.verification ? 'cron' or t.verification ? 'everyNth') and not t.paused
     order by t.name`,
  );
  // Exact milliseconds (computed as numeric), truncated like a timestamptz read through the driver.
  const ms = (value: number | null) => (value === null ? null : Math.floor(value));
  return {
    now: ms(rows[0]!.now_ms)!,
    targets: rows
      .filter((row) => row.id !== null)
      .map((row) => ({
        id: row.id!,
        name: row.name,
        schedule: row.cron === null ? null : ({ cron: row.cron, timezone: row.timezone ?? undefined } as ScheduleConfig),
        verification: row.verification,
        scheduleSettledAt: ms(row.schedule_settled_ms),
        verificationSettledAt: ms(row.verification_settled_ms),
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

export interface DueSlot {
  targetId: string;
  /** The slot, ms since the epoch. */
  slot: number;
  /** Earlier missed slots skipped in favour of this one. */
  skipped: number;
}

// Rows per statement: big enough that 10,000 due slots take a handful of round trips, small
// enough that a statement holds its row locks only briefly.
const SLOTS_PER_STATEMENT = 2000;

/**
 * Creates the runs of due schedule slots, set-based: one statement per batch of targets
 * instead of one per target (a minute boundary can make thousands due at once). Per target
 * the rules are those of one slot: exactly one run per slot whatever the number of
 * schedulers, because the unique index on runs(target_id, schedule_slot) makes a second
 * insert of the same slot a no-op (ON CONFLICT DO NOTHING; a concurrent inserter waits for
 * the first to commit, then does nothing). The slot is settled on the target in the same
 * statement, because retention may later delete the run row that carried it.
 *
 * When a scheduled run of the target is still queued or dispatched (no worker, or a long run
 * ahead of it), the slot is settled without a new run: that waiting run will take a fresh
 * backup when it starts, and a queue of stale slot runs would be a storm after the outage.
 *
 * Two schedulers settling overlapping batches lock target rows and slot keys in an order the
 * planner chooses, so they can deadlock; PostgreSQL then aborts one statement (40P01), which
 * is retried: by then the other committed, and the retry finds its slots taken.
 */
export async function createScheduledRuns(db: Queryable, slots: readonly DueSlot[], runDeadlineMs: number): Promise<Map<string, ScheduledRunOutcome>> {
  const outcomes = new Map<string, ScheduledRunOutcome>();
  const sorted = [...slots].sort((a, b) => (a.targetId < b.targetId ? -1 : a.targetId > b.targetId ? 1 : 0));
  for (let offset = 0; offset < sorted.length; offset += SLOTS_PER_STATEMENT) {
    const batch = sorted.slice(offset, offset + SLOTS_PER_STATEMENT);
    for (let attempt = 1; ; attempt++) {
      try {
        for (const [targetId, outcome] of await createScheduledRunBatch(db, batch, runDeadlineMs)) outcomes.set(targetId, outcome);
        break;
      } catch (error) {
        if (pgErrorCode(error) !== pgErrorCodes.DEADLOCK_DETECTED || attempt >= 3) throw error;
      }
    }
  }
  return outcomes;
}

async function createScheduledRunBatch(db: Queryable, batch: readonly DueSlot[], runDeadlineMs: number): Promise<Map<string, ScheduledRunOutcome>> {
  const { rows } = await db.query<{ target_id: string; run_id: string | null; waiting_run_id: string | null }>(
    `with due as (
       select * from unnest($1::uuid[], $2::timestamptz[], $3::int[]) as d(target_id, slot, skipped)
     ), waiting as (
       select distinct on (w.target_id) w.target_id, w.id from backstop.runs w join due d on d.target_id = w.target_id
       where w.schedule_slot is not null and w.status in ('queued', 'dispatched')
       order by w.target_id, w.created_at
     ), inserted as (
       -- backstop.create_run (migration 011) makes the run, its created event and the wake-up;
       -- in target order, as the locks are taken. A slot already taken yields no row.
       select r.* from (
         select d.* from due d join backstop.targets t on t.id = d.target_id
         -- Paused since the list was read: settled below, without a run.
         where t.schedule is not null and not t.paused and not exists (select 1 from waiting w where w.target_id = d.target_id)
           and (t.schedule_last_slot is null or t.schedule_last_slot < d.slot)
         order by d.target_id
       ) d cross join lateral backstop.create_run(
         p_target_id => d.target_id, p_trigger => 'schedule', p_run_deadline_ms => $4, p_schedule_slot => d.slot,
         p_message => 'queued by the schedule for ' || backstop.iso_utc(d.slot)
           || case when d.skipped > 0 then ' (catch-up; ' || d.skipped || ' earlier missed slot(s) skipped)' else '' end,
         p_data => jsonb_build_object('scheduleSlot', backstop.iso_utc(d.slot), 'skippedSlots', d.skipped)) r
     ), settled as (
       -- Slots settled without a run (skipped after downtime, or this one behind a waiting run)
       -- are counted for the slot_missed alarm; the old settled instant is where they began.
       update backstop.targets t set schedule_last_slot = d.slot,
         schedule_missed_slots = t.schedule_missed_slots + d.skipped + m.waiting,
         schedule_missed_after = case when d.skipped + m.waiting > 0
           then coalesce(t.schedule_missed_after, greatest(t.schedule_since, t.schedule_last_slot)) else t.schedule_missed_after end,
         schedule_missed_at = case when d.skipped + m.waiting > 0 then now() else t.schedule_missed_at end
       from due d cross join lateral (
         select case when exists (select 1 from waiting w where w.target_id = d.target_id) then 1 else 0 end as waiting
       ) m
       where t.id = d.target_id and (t.schedule_last_slot is null or t.schedule_last_slot < d.slot)
       returning t.id
     )
     select d.target_id, r.id as run_id, w.id as waiting_run_id
     from due d left join inserted r on r.target_id = d.target_id left join waiting w on w.target_id = d.target_id
       cross join (select count(*) from settled) s cross join (select count(*) from inserted) i`,
    [batch.map((slot) => slot.targetId), batch.map((slot) => new Date(slot.slot).toISOString()), batch.map((slot) => slot.skipped), runDeadlineMs],
  );
  const outcomes = new Map<string, ScheduledRunOutcome>();
  for (const row of rows) {
    outcomes.set(row.target_id, row.run_id ? { kind: 'created', runId: row.run_id } : row.waiting_run_id ? { kind: 'waiting', waitingRunId: row.waiting_run_id } : { kind: 'taken' });
  }
  return outcomes;
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

// backstop.create_run (migration 011) makes the drill, its created event and the wake-up.
const insertDrill = (claimedCte: string, message: string) => `
  inserted as (
    select r.* from ${claimedCte} c cross join lateral backstop.create_run(
      p_target_id => c.id, p_trigger => 'schedule', p_run_deadline_ms => $2, p_kind => 'verify',
      p_subject_run_id => c.subject_id, p_message => ${message}) r
    where c.subject_id is not null
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
       where t.id = $1 and t.verification ? 'cron' and not t.paused and (t.verification_last_slot is null or t.verification_last_slot < $3::timestamptz)
       returning t.id, t.max_attempts, (select id from subject) as subject_id
     ), ${insertDrill('claimed', `'verification queued by the schedule for ' || backstop.iso_utc($3::timestamptz)`)}
     select (select count(*) from claimed) as claimed, (select id from inserted) as run_id,
            (select subject_id from claimed) as subject_id, (select count(*) from inserted) as created`,
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
       where t.id = $1 and t.verification ? 'everyNth' and not t.paused and (t.verification_nth_at is null or t.verification_nth_at < due.finished_at)
       returning t.id, t.max_attempts, due.id as subject_id
     ), ${insertDrill('claimed', `'verification queued: every ' || $3::int || ' backups'`)}
     select (select count(*) from claimed) as claimed, (select id from inserted) as run_id,
            (select subject_id from claimed) as subject_id, (select count(*) from inserted) as created`,
    [input.targetId, input.runDeadlineMs, input.everyNth],
  );
  const row = rows[0]!;
  return { claimed: Number(row.claimed) > 0, runId: row.run_id, subjectRunId: row.subject_id };
}
