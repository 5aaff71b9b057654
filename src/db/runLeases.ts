import type { Artifact } from '../core/artifact.ts';
import { BackstopError, type ErrorCode } from '../core/errors.ts';
import { activeStatuses, exclusiveStatuses, leasedStatuses, type RunStatus, type RunnerOutcome } from '../core/runState.ts';
import { pgErrorCode, pgErrorCodes } from '../core/pgErrors.ts';
import type { ReportedProgress } from '../core/runProgress.ts';
import { withTransaction, type Pool, type Queryable } from './pool.ts';
import { catalogNowJson, newerProgressSql } from './runProgress.ts';
import { assertRunId, getRun, runColumns, toClaimed, toRecord, type ClaimedRun, type RunRecord, type RunRow } from './runRecords.ts';

interface ClaimOptions {
  leaseTtlMs: number;
  claimedBy: string;
  /**
   * At most this many runs executing across every worker on the catalog. Enforced under a
   * transaction-scoped advisory lock: the count and the claim must see the same state, which
   * one READ COMMITTED statement cannot guarantee.
   */
  globalLimit?: number;
  /** claimRunById only: the statuses it may claim from (default queued and dispatched). */
  fromStatuses?: Array<'queued' | 'dispatched'>;
}

// Arbitrary constant shared by every Backstop process: claims under a global limit serialize on it.
const GLOBAL_LIMIT_LOCK_KEY = 0x62636c6d; // "bclm"

export async function claimNextRun(db: Queryable | Pool, options: ClaimOptions): Promise<ClaimedRun | null> {
  if (options.globalLimit === undefined) return claimNextRunNow(db, options);
  if (!('connect' in db)) throw new Error('claimNextRun with a global limit needs a pool');
  return withTransaction(db, async (client) => {
    await client.query('select pg_advisory_xact_lock($1)', [GLOBAL_LIMIT_LOCK_KEY]);
    const { rows } = await client.query<{ count: number }>(`select count(*)::int as count from backstop.runs where status = any($1::text[])`, [leasedStatuses]);
    if ((rows[0]?.count ?? 0) >= options.globalLimit!) return null;
    return claimNextRunNow(client, options);
  });
}

/**
 * Claims the oldest queued run whose target has no executing run. Two workers racing for two
 * runs of one target both pass the NOT EXISTS check; the partial unique index then refuses
 * the second (23505), which simply retries and picks something else.
 */
async function claimNextRunNow(db: Queryable, options: ClaimOptions): Promise<ClaimedRun | null> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const { rows } = await db.query<RunRow>(
        `select ${runColumns}
         from backstop.claim_run(p_run_id => null, p_lease_ttl_ms => $1, p_claimed_by => $2, p_from_statuses => null, p_exclusive_statuses => $3) r
           join backstop.targets t on t.id = r.target_id`,
        [options.leaseTtlMs, options.claimedBy, exclusiveStatuses],
      );
      return rows[0] ? toClaimed(rows[0]) : null;
    } catch (error) {
      if (pgErrorCode(error) !== pgErrorCodes.UNIQUE_VIOLATION) throw error;
    }
  }
  return null;
}

/** Claims one specific run (what `backstop run RUN_ID` does). Refuses anything not claimable, changing nothing. */
export async function claimRunById(db: Queryable, runId: string, options: ClaimOptions): Promise<ClaimedRun> {
  assertRunId(runId);
  let rows: RunRow[];
  try {
    ({ rows } = await db.query<RunRow>(
      `select ${runColumns}
       from backstop.claim_run(p_run_id => $1, p_lease_ttl_ms => $2, p_claimed_by => $3, p_from_statuses => $4, p_exclusive_statuses => $5) r
         join backstop.targets t on t.id = r.target_id`,
      [runId, options.leaseTtlMs, options.claimedBy, options.fromStatuses ?? ['queued', 'dispatched'], exclusiveStatuses],
    ));
  } catch (error) {
    if (pgErrorCode(error) === pgErrorCodes.UNIQUE_VIOLATION) {
      throw new BackstopError('RUN_NOT_CLAIMABLE', `Run ${runId} cannot start: another run of its target is executing. Wait for it to finish.`);
    }
    throw error;
  }
  if (rows[0]) return toClaimed(rows[0]);
  const run = await getRun(db, runId);
  if (run.status === 'succeeded' || run.status === 'failed' || run.status === 'cancelled' || run.status === 'timed_out') {
    throw new BackstopError('RUN_ALREADY_TERMINAL', `Run ${runId} already finished as ${run.status}; nothing to do. Trigger a new run with \`backstop trigger ${run.targetName}\`.`);
  }
  if (run.status === 'running' || run.status === 'cancelling') {
    throw new BackstopError('RUN_NOT_CLAIMABLE', `Run ${runId} is already being executed by ${run.claimedBy ?? 'another runner'} (attempt ${run.attempt}).`);
  }
  if (options.fromStatuses && !(options.fromStatuses as string[]).includes(run.status)) {
    throw new BackstopError('RUN_NOT_CLAIMABLE', `Run ${runId} is ${run.status}; only a run that is ${options.fromStatuses.join(' or ')} can be claimed here.`);
  }
  throw new BackstopError('RUN_NOT_CLAIMABLE', `Run ${runId} is ${run.status} but past its deadline or cancelled; the reaper will end it.`);
}

export interface LeaseState {
  status: RunStatus;
  cancelRequested: boolean;
  leaseExpiresAt: string;
}

/**
 * Extends the lease and records progress. Null means the lease is lost (reaped, finished,
 * handed to another attempt, or past a deadline): the caller must stop at once.
 */
export async function renewLease(db: Queryable, input: { runId: string; leaseId: string; leaseTtlMs: number; progress?: Record<string, unknown> | null }): Promise<LeaseState | null> {
  const { rows } = await db.query<{ status: RunStatus; cancel_requested: boolean; lease_expires_at: string }>(
    `update backstop.runs set lease_expires_at = now() + $3 * interval '1 millisecond', heartbeat_at = now(),
       progress = ${newerProgressSql('$4')}
     where id = $1 and lease_id = $2 and status = any($5::text[]) and lease_expires_at > now() and deadline_at > now()
     returning status, cancel_requested_at is not null as cancel_requested, lease_expires_at`,
    [input.runId, input.leaseId, input.leaseTtlMs, input.progress ? JSON.stringify(input.progress) : null, leasedStatuses],
  );
  const row = rows[0];
  return row ? { status: row.status, cancelRequested: row.cancel_requested, leaseExpiresAt: row.lease_expires_at } : null;
}

export interface FinalizeInput {
  runId: string;
  leaseId: string;
  outcome: RunnerOutcome;
  error?: { code: string; message: string } | null;
  artifact?: Artifact | null;
  /** How the work ended, as the runner counted it; absent: the run keeps its last progress. */
  progress?: ReportedProgress | null;
}

/**
 * Ends a run. Conditional on the lease, so a runner that lost its run can never overwrite a
 * newer outcome; repeating the same finalize with the same lease is a success.
 */
export async function finalizeRun(db: Queryable, input: FinalizeInput, base?: { lsn: string; slot: string }): Promise<RunRecord> {
  const { rows } = await db.query<RunRow>(
    `with done as (
       update backstop.runs set status = $3, finished_at = now(), error_code = $4, error_message = $5, artifact = $6::jsonb,
         progress = coalesce($8::jsonb || jsonb_build_object('updatedAt', ${catalogNowJson}), progress),
         base_lsn = case when $3 = 'succeeded' then $9::pg_lsn end, base_slot = case when $3 = 'succeeded' then $10 end
       where id = $1 and lease_id = $2 and status = any($7::text[]) and lease_expires_at > now()
       returning *
     ), streaming as (
       -- The first base of a stream stored: the stream is restorable from here on.
       update backstop.continuous_streams s set state = 'streaming', updated_at = now()
       from done where s.target_id = done.target_id and done.status = 'succeeded' and s.state = 'starting' and s.slot_name = $10
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message, data)
       select id, attempt, 'finished', status, coalesce(error_message, 'finished'),
              case when error_code is null then null else jsonb_build_object('code', error_code) end
       from done
     )
     select ${runColumns} from done r join backstop.targets t on t.id = r.target_id`,
    [
      input.runId,
      input.leaseId,
      input.outcome,
      input.error?.code ?? null,
      input.error?.message ?? null,
      input.artifact ? JSON.stringify(input.artifact) : null,
      leasedStatuses,
      input.progress ? JSON.stringify(input.progress) : null,
      base?.lsn ?? null,
      base?.slot ?? null,
    ],
  );
  if (rows[0]) return toRecord(rows[0]);
  const { rows: current } = await db.query<RunRow>(`select ${runColumns} from backstop.runs r join backstop.targets t on t.id = r.target_id where r.id = $1`, [input.runId]);
  const row = current[0];
  if (row && row.lease_id === input.leaseId && row.status === input.outcome) return toRecord(row);
  throw new BackstopError(
    'LEASE_LOST',
    `Run ${input.runId} is no longer held by this runner (it is ${row?.status ?? 'gone'}${row && row.lease_id !== input.leaseId ? ', claimed by a newer attempt' : ''}); its outcome was not changed.`,
  );
}

/**
 * The run as a finalize with `leaseId` finds it: `held` while that lease still holds it (the
 * only time a report is worth checking), `sameLease` when the run was last claimed with it.
 */
export async function getRunForLease(db: Queryable, runId: string, leaseId: string): Promise<{ run: RunRecord; held: boolean; sameLease: boolean }> {
  assertRunId(runId);
  const { rows } = await db.query<RunRow & { held: boolean; same_lease: boolean }>(
    `select ${runColumns}, r.lease_id = $2 and r.status = any($3::text[]) and r.lease_expires_at > now() as held,
       r.lease_id is not distinct from $2::uuid as same_lease
     from backstop.runs r join backstop.targets t on t.id = r.target_id where r.id = $1`,
    [runId, leaseId, leasedStatuses],
  );
  const row = rows[0];
  if (!row) throw new BackstopError('RUN_NOT_FOUND', `No run with id ${runId}. List runs with \`backstop runs\`.`);
  return { run: toRecord(row), held: row.held === true, sameLease: row.same_lease === true };
}

/** Hands a running run back to the queue (graceful worker shutdown). */
export async function releaseRun(db: Queryable, input: { runId: string; leaseId: string; reason: string }): Promise<boolean> {
  const { rowCount } = await db.query(
    `with released as (
       update backstop.runs set status = 'queued', lease_id = null, lease_expires_at = null, claimed_by = null, progress = null,
         start_deadline_at = null
       where id = $1 and lease_id = $2 and status = 'running' and lease_expires_at > now()
       returning id, attempt
     )
     insert into backstop.run_events (run_id, attempt, kind, status, message)
     select id, attempt, 'released', 'queued', $3 from released`,
    [input.runId, input.leaseId, input.reason],
  );
  return (rowCount ?? 0) > 0;
}

export interface ReapedRun {
  id: string;
  previousStatus: RunStatus;
  status: RunStatus;
  errorCode: ErrorCode;
}

/**
 * One conditional UPDATE, safe with any number of reapers: each overdue run is locked by at
 * most one of them (SKIP LOCKED) and re-checked against the database clock.
 */
export async function reapRuns(db: Queryable): Promise<ReapedRun[]> {
  const { rows } = await db.query<{ id: string; previous_status: RunStatus; status: RunStatus; error_code: ErrorCode }>(
    `with overdue as (
       select id, status as previous_status,
         case
           when deadline_at <= now() then 'DEADLINE_EXCEEDED'
           when status in ('running', 'cancelling') then 'LEASE_EXPIRED'
           else 'START_DEADLINE_EXCEEDED'
         end as reason,
         status = 'running' and deadline_at > now() and attempt < max_attempts as retry
       from backstop.runs
       where status = any($1::text[])
         and (deadline_at <= now()
              or (status in ('running', 'cancelling') and lease_expires_at <= now())
              or (status in ('queued', 'dispatched') and start_deadline_at <= now()))
       for update skip locked
     ), reaped as (
       update backstop.runs r set
         status = case when o.retry then 'queued' else 'timed_out' end,
         finished_at = case when o.retry then null else now() end,
         lease_id = case when o.retry then null else r.lease_id end,
         lease_expires_at = case when o.retry then null else r.lease_expires_at end,
         claimed_by = case when o.retry then null else r.claimed_by end,
         -- A start deadline bounds one dispatch; the requeued run waits for a new one.
         start_deadline_at = case when o.retry then null else r.start_deadline_at end,
         error_code = case when o.retry then null else o.reason end,
         error_message = case when o.retry then null else
           case o.reason
             when 'DEADLINE_EXCEEDED' then 'The run passed its hard deadline (' || to_char(r.deadline_at, 'YYYY-MM-DD"T"HH24:MI:SSOF') || ').'
             when 'LEASE_EXPIRED' then 'The runner ' || coalesce(r.claimed_by, '') || ' stopped heartbeating; its lease expired'
               || case when r.cancel_requested_at is not null then ' while a cancel was pending.' else '.' end
             else 'No executor claimed the run before its start deadline.'
           end end
       -- The ANY(ARRAY(...)) makes the planner fetch the overdue rows by primary key. With a
       -- plain join it estimates the overdue count from lease_expires_at and deadline_at over
       -- the whole table, where every finished run has long expired ones, and hashes the whole
       -- runs table to update one row (10,000 running among 200,000 finished: 0.25-0.7 s per
       -- pass that reaps anything, growing with history; bench/results/latest-load.md).
       from overdue o where r.id = o.id and r.id = any (array(select id from overdue))
       returning r.id, o.previous_status, r.status, r.attempt, r.error_message, o.reason
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message, data)
       select id, attempt, case when status = 'queued' then 'requeued' else 'reaped' end, status,
              coalesce(error_message, 'lease expired; queued again for another attempt'),
              jsonb_build_object('reason', reason, 'previousStatus', previous_status)
       from reaped
     )
     select id, previous_status, status, reason as error_code from reaped`,
    [activeStatuses],
  );
  return rows.map((row) => ({ id: row.id, previousStatus: row.previous_status, status: row.status, errorCode: row.error_code }));
}
