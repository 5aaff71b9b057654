import { readStoredProgress, type RunProgress } from '../core/runProgress.ts';
import type { RunStatus } from '../core/runState.ts';
import { activeStatuses, terminalStatuses } from '../core/runState.ts';
import type { Queryable } from './pool.ts';
import type { ScheduleConfig } from './targets.ts';

/**
 * What the dashboard shows per target, computed in the catalog rather than in the browser from
 * lists of runs: each target's latest runs of interest (one index probe each on
 * runs_by_target) and the history behind its charts.
 */

export interface RunBrief {
  id: string;
  kind: 'backup' | 'verify';
  status: RunStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  /** Stored bytes of the artifact (files and manifest), or null without one. */
  bytes: number | null;
  subjectRunId: string | null;
  /** The run's progress while it has not finished. */
  progress: RunProgress | null;
}

export interface TargetActivity {
  name: string;
  createdAt: string;
  schedule: ScheduleConfig | null;
  /** Paused: no scheduled backups or drills until resumed. */
  paused: boolean;
  executor: 'worker' | 'github';
  /** The newest backup run, whatever its status. */
  lastRun: RunBrief | null;
  /** The newest backup run that ended. */
  lastFinishedRun: RunBrief | null;
  /** A backup queued or in progress (the oldest, which executes first). */
  activeRun: RunBrief | null;
  /** The newest succeeded backup whose artifact is still kept. */
  newestBackup: RunBrief | null;
  /** The newest restore drill that ended. */
  lastVerification: RunBrief | null;
}

// Timestamps inside JSON are formatted here: the pg type parsers only see top-level columns.
const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

const artifactBytes = `case when r.artifact is null then null else
  coalesce((r.artifact->'manifest'->>'size')::bigint, 0)
  + coalesce((select sum((f->>'size')::bigint) from jsonb_array_elements(r.artifact->'files') f), 0) end`;

const brief = `jsonb_build_object(
  'id', r.id, 'kind', r.kind, 'status', r.status, 'createdAt', ${iso('r.created_at')},
  'startedAt', ${iso('r.started_at')}, 'finishedAt', ${iso('r.finished_at')},
  'error', case when r.error_code is null then null else jsonb_build_object('code', r.error_code, 'message', coalesce(r.error_message, '')) end,
  'bytes', ${artifactBytes}, 'subjectRunId', r.subject_run_id,
  'progress', case when r.finished_at is null then r.progress end)`;

const latest = (where: string, order = 'r.created_at desc') => `(select ${brief} from backstop.runs r where r.target_id = t.id and ${where} order by ${order} limit 1)`;

export async function listTargetActivity(db: Queryable): Promise<TargetActivity[]> {
  const { rows } = await db.query<{
    name: string;
    created_at: string;
    schedule: ScheduleConfig | null;
    paused: boolean;
    external: boolean;
    last_run: RunBrief | null;
    last_finished_run: RunBrief | null;
    active_run: RunBrief | null;
    newest_backup: RunBrief | null;
    last_verification: RunBrief | null;
  }>(
    `select t.name, t.created_at, t.schedule, t.paused, t.executor_config is not null as external,
       ${latest(`r.kind = 'backup'`)} as last_run,
       ${latest(`r.kind = 'backup' and r.status = any($1::text[])`)} as last_finished_run,
       ${latest(`r.kind = 'backup' and r.status = any($2::text[])`, 'r.created_at')} as active_run,
       ${latest(`r.kind = 'backup' and r.status = 'succeeded' and r.artifact is not null and r.pruned_at is null`)} as newest_backup,
       ${latest(`r.kind = 'verify' and r.status = any($1::text[])`)} as last_verification
     from backstop.targets t
     order by t.name`,
    [terminalStatuses, activeStatuses],
  );
  const read = (brief: RunBrief | null): RunBrief | null => brief && { ...brief, progress: readStoredProgress(brief.progress) };
  return rows.map((row) => ({
    name: row.name,
    createdAt: row.created_at,
    schedule: row.schedule,
    paused: row.paused,
    executor: row.external ? 'github' : 'worker',
    lastRun: read(row.last_run),
    lastFinishedRun: read(row.last_finished_run),
    activeRun: read(row.active_run),
    newestBackup: read(row.newest_backup),
    lastVerification: read(row.last_verification),
  }));
}

export interface BackupHistoryPoint {
  runId: string;
  status: RunStatus;
  createdAt: string;
  finishedAt: string;
  /** From start to finish; null when the run never started. */
  durationSeconds: number | null;
  /** Stored bytes (files and manifest) of a succeeded backup. */
  bytes: number | null;
  /** Bytes pg_dump produced before compression, as last reported by the runner. */
  dumpedBytes: number | null;
  errorCode: string | null;
}

/** The `limit` newest finished backups of a target, oldest first (the order a chart draws). */
export async function listBackupHistory(db: Queryable, targetId: string, limit: number): Promise<BackupHistoryPoint[]> {
  const { rows } = await db.query<{
    id: string;
    status: RunStatus;
    created_at: string;
    finished_at: string;
    duration_seconds: number | null;
    bytes: number | null;
    dumped_bytes: number | null;
    error_code: string | null;
  }>(
    `select r.id, r.status, r.created_at, r.finished_at,
       extract(epoch from (r.finished_at - r.started_at))::float8 as duration_seconds,
       ${artifactBytes} as bytes,
       case when jsonb_typeof(r.progress->'bytesDumped') = 'number' then (r.progress->>'bytesDumped')::float8 end as dumped_bytes,
       r.error_code
     from backstop.runs r
     where r.target_id = $1 and r.kind = 'backup' and r.finished_at is not null
     order by r.finished_at desc, r.id desc
     limit $2`,
    [targetId, limit],
  );
  return rows.reverse().map((row) => ({
    runId: row.id,
    status: row.status,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
    durationSeconds: row.duration_seconds,
    bytes: row.bytes === null ? null : Number(row.bytes),
    dumpedBytes: row.dumped_bytes,
    errorCode: row.error_code,
  }));
}
