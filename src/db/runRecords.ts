import type { Artifact } from '../core/artifact.ts';
import { BackstopError } from '../core/errors.ts';
import { activeStatuses, type RunStatus } from '../core/runState.ts';
import { readStoredProgress, type RunProgress } from '../core/runProgress.ts';
import type { Queryable } from './pool.ts';
import { shownProgressSql } from './runProgress.ts';

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
  /** The run's backup or drill as it goes (or as it ended), or a restore of its backup under way. */
  progress: RunProgress | null;
  artifact: Artifact | null;
  executor: Record<string, unknown> | null;
  /** The latest drill's result, on a backup run. */
  verification: Record<string, unknown> | null;
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

/** The columns every RunRow query selects, from `backstop.runs r join backstop.targets t`. */
export const runColumns = `r.id, r.kind, r.subject_run_id, r.verification, r.target_id, t.name as target_name, r.status, r.trigger, r.attempt, r.max_attempts,
  r.lease_id, r.lease_expires_at, r.heartbeat_at, r.claimed_by, r.start_deadline_at, r.deadline_at,
  r.cancel_requested_at, r.created_at, r.started_at, r.finished_at, r.error_code, r.error_message,
  ${shownProgressSql} as progress, r.artifact, r.executor`;

export interface RunRow {
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
  progress: unknown;
  artifact: Artifact | null;
  executor: Record<string, unknown> | null;
}

export function toRecord(row: RunRow): RunRecord {
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
    progress: readStoredProgress(row.progress),
    artifact: row.artifact,
    executor: row.executor,
    verification: row.verification,
  };
}

export function toClaimed(row: RunRow): ClaimedRun {
  if (!row.lease_id) throw new Error(`run ${row.id} has no lease`);
  return { ...toRecord(row), leaseId: row.lease_id };
}

export async function createRun(
  db: Queryable,
  input: { targetId: string; trigger: string; runDeadlineMs: number; kind?: RunKind; subjectRunId?: string; requestedBy?: string; message?: string },
): Promise<RunRecord> {
  // backstop.create_run (migration 011) holds the rules of a new run, for every client.
  const { rows } = await db.query<RunRow>(
    `select ${runColumns}
     from backstop.create_run(p_target_id => $1, p_trigger => $2, p_run_deadline_ms => $3, p_kind => $4, p_subject_run_id => $5,
                              p_requested_by => $6, p_message => $7) r
       join backstop.targets t on t.id = r.target_id`,
    [input.targetId, input.trigger, input.runDeadlineMs, input.kind ?? 'backup', input.subjectRunId ?? null, input.requestedBy ?? null, input.message ?? null],
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

/** Records a drill's result on the backup run it verified (terminal runs accept this one column). */
export async function recordVerification(db: Queryable, subjectRunId: string, verification: Record<string, unknown>): Promise<void> {
  await db.query(`update backstop.runs set verification = $2::jsonb || jsonb_build_object('at', now()) where id = $1`, [subjectRunId, JSON.stringify(verification)]);
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
