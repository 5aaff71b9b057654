import { BackstopError, type ErrorCode } from '../core/errors.ts';
import { activeStatuses, exclusiveStatuses, leasedStatuses, runStatuses, type RunStatus, type RunnerOutcome } from '../core/runState.ts';
import { pgErrorCode, pgErrorCodes, withTransaction, type Pool, type Queryable } from './pool.ts';

export type RunKind = 'backup' | 'verify';

export interface RunRecord {
  id: string;
  kind: RunKind;
  /** For a verification drill: the backup run it verifies. */
  subjectRunId: string | null;
  targetId: string;
  targetName: string;
  status: RunStatus;
  trigger: string;
  attempt: number;
  maxAttempts: number;
  leaseExpiresAt: string | null;
  heartbeatAt: string | null;
  claimedBy: string | null;
  startDeadlineAt: string | null;
  deadlineAt: string;
  cancelRequestedAt: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  progress: Record<string, unknown> | null;
  artifact: Artifact | null;
  executor: Record<string, unknown> | null;
  /** The latest drill's result, on a backup run. */
  verification: Record<string, unknown> | null;
}

export interface ArtifactFile {
  name: string;
  size: number;
  sha256: string;
}

export interface Artifact {
  storeUrl: string;
  prefix: string;
  manifest: ArtifactFile;
  files: ArtifactFile[];
}

/** A run as its runner holds it: the record plus the fencing token. */
export interface ClaimedRun extends RunRecord {
  leaseId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function assertRunId(runId: string): void {
  if (!UUID.test(runId)) {
    throw new BackstopError('RUN_NOT_FOUND', `"${runId}" is not a run id. Run ids are UUIDs; list them with \`backstop runs\`.`);
  }
}

const runColumns = `r.id, r.kind, r.subject_run_id, r.verification, r.target_id, t.name as target_name, r.status, r.trigger, r.attempt, r.max_attempts,
  r.lease_id, r.lease_expires_at, r.heartbeat_at, r.claimed_by, r.start_deadline_at, r.deadline_at,
  r.cancel_requested_at, r.created_at, r.started_at, r.finished_at, r.error_code, r.error_message,
  r.progress, r.artifact, r.executor`;

interface RunRow {
  id: string;
  kind: RunKind;
  subject_run_id: string | null;
  verification: Record<string, unknown> | null;
  target_id: string;
  target_name: string;
  status: RunStatus;
  trigger: string;
  attempt: number;
  max_attempts: number;
  lease_id: string | null;
  lease_expires_at: string | null;
  heartbeat_at: string | null;
  claimed_by: string | null;
  start_deadline_at: string | null;
  deadline_at: string;
  cancel_requested_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error_code: string | null;
  error_message: string | null;
  progress: Record<string, unknown> | null;
  artifact: Artifact | null;
  executor: Record<string, unknown> | null;
}

function toRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    kind: row.kind,
    subjectRunId: row.subject_run_id,
    targetId: row.target_id,
    targetName: row.target_name,
    status: row.status,
    trigger: row.trigger,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    leaseExpiresAt: row.lease_expires_at,
    heartbeatAt: row.heartbeat_at,
    claimedBy: row.claimed_by,
    startDeadlineAt: row.start_deadline_at,
    deadlineAt: row.deadline_at,
    cancelRequestedAt: row.cancel_requested_at,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    progress: row.progress,
    artifact: row.artifact,
    executor: row.executor,
    verification: row.verification,
  };
}

function toClaimed(row: RunRow): ClaimedRun {
  if (!row.lease_id) throw new Error(`run ${row.id} has no lease`);
  return { ...toRecord(row), leaseId: row.lease_id };
}

export async function createRun(
  db: Queryable,
  input: { targetId: string; trigger: string; runDeadlineMs: number; kind?: RunKind; subjectRunId?: string; requestedBy?: string },
): Promise<RunRecord> {
  // backstop.create_run (migration 011) holds the rules of a new run, for every client.
  const { rows } = await db.query<RunRow>(
    `select ${runColumns}
     from backstop.create_run(p_target_id => $1, p_trigger => $2, p_run_deadline_ms => $3, p_kind => $4, p_subject_run_id => $5,
                              p_requested_by => $6) r
       join backstop.targets t on t.id = r.target_id`,
    [input.targetId, input.trigger, input.runDeadlineMs, input.kind ?? 'backup', input.subjectRunId ?? null, input.requestedBy ?? null],
  );
  const row = rows[0];
  if (!row) throw new BackstopError('TARGET_NOT_FOUND', `Target ${input.targetId} does not exist.`);
  return toRecord(row);
}

export async function getRun(db: Queryable, runId: string): Promise<RunRecord> {
  assertRunId(runId);
  const { rows } = await db.query<RunRow>(`select ${runColumns} from backstop.runs r join backstop.targets t on t.id = r.target_id where r.id = $1`, [runId]);
  const row = rows[0];
  if (!row) throw new BackstopError('RUN_NOT_FOUND', `No run with id ${runId}. List runs with \`backstop runs\`.`);
  return toRecord(row);
}

export async function listRuns(db: Queryable, filter: { targetName?: string; status?: RunStatus; limit?: number } = {}): Promise<RunRecord[]> {
  const { rows } = await db.query<RunRow>(
    `select ${runColumns} from backstop.runs r join backstop.targets t on t.id = r.target_id
     where ($1::text is null or t.name = $1) and ($2::text is null or r.status = $2)
     order by r.created_at desc, r.id limit $3`,
    [filter.targetName ?? null, filter.status ?? null, Math.min(Math.max(filter.limit ?? 50, 1), 1000)],
  );
  return rows.map(toRecord);
}

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
       progress = coalesce($4::jsonb, progress)
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
}

/**
 * Ends a run. Conditional on the lease, so a runner that lost its run can never overwrite a
 * newer outcome; repeating the same finalize with the same lease is a success.
 */
export async function finalizeRun(db: Queryable, input: FinalizeInput): Promise<RunRecord> {
  const { rows } = await db.query<RunRow>(
    `with done as (
       update backstop.runs set status = $3, finished_at = now(), error_code = $4, error_message = $5, artifact = $6::jsonb
       where id = $1 and lease_id = $2 and status = any($7::text[]) and lease_expires_at > now()
       returning *
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message, data)
       select id, attempt, 'finished', status, coalesce(error_message, 'finished'),
              case when error_code is null then null else jsonb_build_object('code', error_code) end
       from done
     )
     select ${runColumns} from done r join backstop.targets t on t.id = r.target_id`,
    [input.runId, input.leaseId, input.outcome, input.error?.code ?? null, input.error?.message ?? null, input.artifact ? JSON.stringify(input.artifact) : null, leasedStatuses],
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

/** Records a drill's result on the backup run it verified (terminal runs accept this one column). */
export async function recordVerification(db: Queryable, subjectRunId: string, verification: Record<string, unknown>): Promise<void> {
  await db.query(`update backstop.runs set verification = $2::jsonb || jsonb_build_object('at', now()) where id = $1`, [subjectRunId, JSON.stringify(verification)]);
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

/**
 * Cancels a run: a queued or dispatched run ends `cancelled` at once; a running one becomes
 * `cancelling` and its runner learns it from its next heartbeat.
 */
export async function requestCancel(db: Queryable, runId: string, reason = 'cancel requested'): Promise<RunRecord> {
  assertRunId(runId);
  const { rows } = await db.query<RunRow & { previous_status: RunStatus }>(
    `with target_run as (
       select id, status as previous_status from backstop.runs where id = $1 and status = any($2::text[]) for update
     ), updated as (
       update backstop.runs r set
         cancel_requested_at = coalesce(r.cancel_requested_at, now()),
         status = case when p.previous_status in ('queued', 'dispatched') then 'cancelled' else 'cancelling' end,
         finished_at = case when p.previous_status in ('queued', 'dispatched') then now() else null end,
         error_code = case when p.previous_status in ('queued', 'dispatched') then 'CANCELLED' else r.error_code end,
         error_message = case when p.previous_status in ('queued', 'dispatched') then $3 else r.error_message end
       from target_run p where r.id = p.id
       returning r.*, p.previous_status
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message)
       select id, attempt, 'cancel_requested', status, $3 from updated
     )
     select ${runColumns}, r.previous_status from updated r join backstop.targets t on t.id = r.target_id`,
    [runId, activeStatuses, reason],
  );
  if (rows[0]) return toRecord(rows[0]);
  const run = await getRun(db, runId);
  throw new BackstopError('RUN_ALREADY_TERMINAL', `Run ${runId} already finished as ${run.status}; there is nothing to cancel.`);
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

export interface RunEvent {
  id: number;
  runId: string;
  at: string;
  attempt: number;
  kind: string;
  status: string | null;
  message: string | null;
  data: Record<string, unknown> | null;
}

/** Appends an event on behalf of a runner, only while it still holds the lease. */
export async function appendRunnerEvent(db: Queryable, input: { runId: string; leaseId: string; kind: string; message: string; data?: Record<string, unknown> }): Promise<boolean> {
  const { rowCount } = await db.query(
    `insert into backstop.run_events (run_id, attempt, kind, status, message, data)
     select id, attempt, $3, status, $4, $5::jsonb from backstop.runs
     where id = $1 and lease_id = $2 and status = any($6::text[])`,
    [input.runId, input.leaseId, input.kind, input.message, input.data ? JSON.stringify(input.data) : null, leasedStatuses],
  );
  return (rowCount ?? 0) > 0;
}

export async function appendRunEvent(db: Queryable, input: { runId: string; kind: string; message: string; data?: Record<string, unknown> }): Promise<void> {
  await db.query(
    `insert into backstop.run_events (run_id, attempt, kind, status, message, data)
     select id, attempt, $2, status, $3, $4::jsonb from backstop.runs where id = $1`,
    [input.runId, input.kind, input.message, input.data ? JSON.stringify(input.data) : null],
  );
}

/** A row of backstop.run_events as pg returns it (ids are bigint: text). */
export interface RunEventRow {
  id: number | string;
  run_id: string;
  at: string;
  attempt: number;
  kind: string;
  status: string | null;
  message: string | null;
  data: Record<string, unknown> | null;
}

export function runEventFromRow(row: RunEventRow): RunEvent {
  return {
    id: Number(row.id),
    runId: row.run_id,
    at: row.at,
    attempt: row.attempt,
    kind: row.kind,
    status: row.status,
    message: row.message,
    data: row.data,
  };
}

export async function listRunEvents(db: Queryable, runId: string, afterId = 0): Promise<RunEvent[]> {
  assertRunId(runId);
  const { rows } = await db.query<RunEventRow>(`select * from backstop.run_events where run_id = $1 and id > $2 order by id`, [runId, afterId]);
  return rows.map(runEventFromRow);
}

/** Position of a run in the newest-first order: creation time in microseconds, then id. */
export interface RunPosition {
  createdUs: number;
  id: string;
}

export interface RunPageFilter {
  targetName?: string;
  status?: RunStatus;
  kind?: RunKind;
  limit: number;
  /** Keyset pagination: runs strictly after this position in the newest-first order. */
  after?: RunPosition;
  offset?: number;
}

/**
 * One page of runs, newest first, for the API. Keyset pagination needs the exact creation time:
 * timestamps reach JavaScript with millisecond precision, so the position is built from the
 * database's microseconds (whole seconds and the microsecond part separately, exact on any
 * server version) rather than from `createdAt`.
 */
export async function listRunsPage(db: Queryable, filter: RunPageFilter): Promise<{ runs: RunRecord[]; positions: RunPosition[] }> {
  const { rows } = await db.query<RunRow & { created_us: number }>(
    `select ${runColumns},
       extract(epoch from date_trunc('second', r.created_at))::bigint * 1000000
         + extract(microseconds from r.created_at)::bigint % 1000000 as created_us
     from backstop.runs r join backstop.targets t on t.id = r.target_id
     where ($1::text is null or t.name = $1) and ($2::text is null or r.status = $2) and ($3::text is null or r.kind = $3)
       and ($4::bigint is null or (r.created_at, r.id) < (timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5::uuid))
     order by r.created_at desc, r.id desc
     limit $6 offset $7`,
    [filter.targetName ?? null, filter.status ?? null, filter.kind ?? null, filter.after?.createdUs ?? null, filter.after?.id ?? null, filter.limit, filter.offset ?? 0],
  );
  return { runs: rows.map(toRecord), positions: rows.map((row) => ({ createdUs: Number(row.created_us), id: row.id })) };
}

/** How many runs are in each status (every status present, zero when none). */
export async function countRunsByStatus(db: Queryable): Promise<Record<RunStatus, number>> {
  const { rows } = await db.query<{ status: RunStatus; count: number }>(
    `select s.status, count(r.id)::int as count
     from unnest($1::text[]) as s(status) left join backstop.runs r on r.status = s.status
     group by s.status`,
    [runStatuses],
  );
  return Object.fromEntries(rows.map((row) => [row.status, row.count])) as Record<RunStatus, number>;
}

export interface FinishedRunSample {
  id: string;
  kind: RunKind;
  status: RunStatus;
  finishedAt: string;
  /** Position for the next call, exact to the microsecond. */
  finishedUs: number;
  /** From start to finish; null when the run never started (cancelled or reaped in the queue). */
  durationSeconds: number | null;
  /** Stored bytes of the artifact (files and manifest); null without one. */
  artifactBytes: number | null;
}

/**
 * Runs that finished after `after` (exclusive, in finish order), for metrics. Runs that
 * finished in the last second are left for the next call: `finished_at` is the finalizing
 * transaction's start time, so a run committed a moment from now may still get a time
 * earlier than one already read.
 */
export async function listFinishedRunsAfter(db: Queryable, after: { finishedUs: number; id: string } | null, limit: number): Promise<FinishedRunSample[]> {
  const { rows } = await db.query<{
    id: string;
    kind: RunKind;
    status: RunStatus;
    finished_at: string;
    finished_us: number;
    duration_seconds: number | null;
    artifact_bytes: number | null;
  }>(
    `select r.id, r.kind, r.status, r.finished_at,
       extract(epoch from date_trunc('second', r.finished_at))::bigint * 1000000
         + extract(microseconds from r.finished_at)::bigint % 1000000 as finished_us,
       extract(epoch from (r.finished_at - r.started_at))::float8 as duration_seconds,
       case when r.artifact is null then null else
         coalesce((r.artifact->'manifest'->>'size')::bigint, 0)
         + coalesce((select sum((f->>'size')::bigint) from jsonb_array_elements(r.artifact->'files') f), 0) end as artifact_bytes
     from backstop.runs r
     where r.finished_at is not null and r.finished_at < now() - interval '1 second'
       and ($1::bigint is null or (r.finished_at, r.id) > (timestamptz 'epoch' + $1::bigint * interval '1 microsecond', $2::uuid))
     order by r.finished_at, r.id
     limit $3`,
    [after?.finishedUs ?? null, after?.id ?? null, limit],
  );
  return rows.map((row) => ({
    id: row.id,
    kind: row.kind,
    status: row.status,
    finishedAt: row.finished_at,
    finishedUs: Number(row.finished_us),
    durationSeconds: row.duration_seconds,
    artifactBytes: row.artifact_bytes === null ? null : Number(row.artifact_bytes),
  }));
}

export interface DispatchableRun {
  run: RunRecord;
  executorConfig: Record<string, unknown>;
}

/**
 * Hands queued backups of targets with an external executor to the dispatcher: they become
 * `dispatched` with a start deadline, atomically, so no two dispatchers send the same run.
 * If the dispatcher dies before GitHub hears of it, the start deadline reaps the run.
 */
export async function claimForDispatch(db: Queryable, options: { startDeadlineMs: number; limit: number; dispatcher: string }): Promise<DispatchableRun[]> {
  const { rows } = await db.query<RunRow & { executor_config: Record<string, unknown> }>(
    `with candidate as (
       select q.id from backstop.runs q join backstop.targets e on e.id = q.target_id
       where q.status = 'queued' and q.kind = 'backup' and e.executor_config is not null
         and q.cancel_requested_at is null and q.deadline_at > now()
         and (not q.exclusive or not exists (
           select 1 from backstop.runs x where x.target_id = q.target_id and x.exclusive and x.status = any($3::text[])))
         -- Of an exclusive target's queued backups only the oldest: the NOT EXISTS above sees
         -- none of this statement's own updates, so two of them would both be dispatched and
         -- the one-executing-run index would fail the whole pass, for every target, every time.
         and (not q.exclusive or not exists (
           select 1 from backstop.runs y
           where y.target_id = q.target_id and y.exclusive and y.status = 'queued' and y.kind = 'backup'
             and y.cancel_requested_at is null and y.deadline_at > now() and (y.created_at, y.id) < (q.created_at, q.id)))
       order by q.created_at
       for update of q skip locked
       limit $2
     ), dispatched as (
       update backstop.runs r set status = 'dispatched',
         start_deadline_at = least(r.deadline_at, now() + $1 * interval '1 millisecond'),
         executor = jsonb_build_object('kind', 'github', 'state', 'dispatching', 'dispatcher', $4::text)
       from candidate where r.id = candidate.id
       returning r.*
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message)
       select id, attempt, 'dispatching', 'dispatched', 'handing the run to GitHub Actions' from dispatched
     )
     select ${runColumns}, t.executor_config from dispatched r join backstop.targets t on t.id = r.target_id`,
    [options.startDeadlineMs, options.limit, exclusiveStatuses, options.dispatcher],
  );
  return rows.map((row) => ({ run: toRecord(row), executorConfig: row.executor_config }));
}

/** Merges executor facts (GitHub run id and URL, correlation state) into the run. */
export async function updateExecutor(db: Queryable, runId: string, patch: Record<string, unknown>, event?: { kind: string; message: string }): Promise<void> {
  await db.query(
    `with updated as (
       update backstop.runs set executor = coalesce(executor, '{}'::jsonb) || $2::jsonb where id = $1 returning id, attempt, status
     )
     insert into backstop.run_events (run_id, attempt, kind, status, message, data)
     select id, attempt, $3, status, $4, $2::jsonb from updated where $3::text is not null`,
    [runId, JSON.stringify(patch), event?.kind ?? null, event?.message ?? null],
  );
}

/**
 * Ends a run from the executor's side: the GitHub job is over (it completed, was refused, or
 * its last step reported) while the run never finalized. Safe without a lease because the
 * job that could have held one has ended. Returns null when the run was already terminal.
 */
export async function endRunFromExecutor(
  db: Queryable,
  input: { runId: string; status: 'failed' | 'cancelled' | 'timed_out'; error: { code: string; message: string }; onlyStatuses?: RunStatus[] },
): Promise<RunRecord | null> {
  const { rows } = await db.query<RunRow>(
    `with ended as (
       update backstop.runs set status = $2, finished_at = now(), error_code = $3, error_message = $4,
         cancel_requested_at = case when $2 = 'cancelled' then coalesce(cancel_requested_at, now()) else cancel_requested_at end
       where id = $1 and status = any($5::text[])
       returning *
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message, data)
       select id, attempt, 'executor_ended', status, error_message, jsonb_build_object('code', error_code) from ended
     )
     select ${runColumns} from ended r join backstop.targets t on t.id = r.target_id`,
    [input.runId, input.status, input.error.code, input.error.message, input.onlyStatuses ?? activeStatuses],
  );
  return rows[0] ? toRecord(rows[0]) : null;
}

/** Runs handed to GitHub whose GitHub side still needs watching (or a cancel sent). */
export async function listExecutorRuns(db: Queryable): Promise<RunRecord[]> {
  const { rows } = await db.query<RunRow>(
    `select ${runColumns} from backstop.runs r join backstop.targets t on t.id = r.target_id
     where r.executor->>'kind' = 'github'
       and (r.status = any($1::text[])
            or (r.status = 'cancelled' and r.executor ? 'workflowRunId' and not r.executor ? 'cancelSent'))
     order by r.created_at
     limit 500`,
    [activeStatuses],
  );
  return rows.map(toRecord);
}
