import { activeStatuses, type RunStatus } from '../core/runState.ts';
import type { Queryable } from './pool.ts';
import type { Artifact } from './runs.ts';

/** A succeeded run with an artifact, as retention sees it. */
export interface RetainedBackup {
  id: string;
  /** When the backup was taken: the run's start (its creation if it never recorded one). */
  takenAt: string;
  verified: boolean;
  artifact: Artifact;
  /** Set when an earlier prune deleted its objects but not yet its row. */
  prunedAt: string | null;
}

// The same order as planRetention (taken desc, id desc); markRunPruned re-checks protection with it.
const takenAt = 'coalesce(r.started_at, r.created_at)';

/** Succeeded runs with an artifact of a target, newest first; those marked pruned included. */
export async function listRetainedBackups(db: Queryable, targetId: string): Promise<RetainedBackup[]> {
  const { rows } = await db.query<{ id: string; taken_at: string; verified: boolean; artifact: Artifact; pruned_at: string | null }>(
    `select r.id, ${takenAt} as taken_at, coalesce(r.verification->>'status' = 'passed', false) as verified, r.artifact, r.pruned_at
     from backstop.runs r
     where r.target_id = $1 and r.kind = 'backup' and r.status = 'succeeded' and r.artifact is not null
     order by ${takenAt} desc, r.id desc`,
    [targetId],
  );
  return rows.map((row) => ({ id: row.id, takenAt: row.taken_at, verified: row.verified, artifact: row.artifact, prunedAt: row.pruned_at }));
}

/**
 * Marks a backup pruned before any of its objects is deleted, so that nothing reading the
 * catalog (restore, verify, the dashboard) picks a backup that is being taken apart. Re-checks
 * in the database, at this instant, that it is neither the newest succeeded backup nor the
 * newest verified one of its target, and that no drill is restoring it right now: a run that
 * finished or passed a drill after the plan was made is never deleted on a stale plan, and a
 * drill never reads a backup being taken apart. True when the run is (now or already) marked.
 */
export async function markRunPruned(db: Queryable, runId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `update backstop.runs r set pruned_at = coalesce(r.pruned_at, now())
     where r.id = $1 and r.kind = 'backup' and r.status = 'succeeded'
       and r.id is distinct from (
         select n.id from backstop.runs n
         where n.target_id = r.target_id and n.kind = 'backup' and n.status = 'succeeded' and n.artifact is not null and n.pruned_at is null
         order by coalesce(n.started_at, n.created_at) desc, n.id desc limit 1)
       and r.id is distinct from (
         select v.id from backstop.runs v
         where v.target_id = r.target_id and v.kind = 'backup' and v.status = 'succeeded' and v.artifact is not null and v.pruned_at is null
           and v.verification->>'status' = 'passed'
         order by coalesce(v.started_at, v.created_at) desc, v.id desc limit 1)
       and not exists (
         select 1 from backstop.runs d where d.subject_run_id = r.id and d.status in ('queued', 'dispatched', 'running', 'cancelling'))`,
    [runId],
  );
  return (rowCount ?? 0) > 0;
}

/** Deletes the row of a run whose objects are gone (events and runner token cascade). */
export async function deletePrunedRun(db: Queryable, runId: string): Promise<boolean> {
  const { rowCount } = await db.query('delete from backstop.runs where id = $1 and pruned_at is not null', [runId]);
  return (rowCount ?? 0) > 0;
}

export interface RunForGarbage {
  status: RunStatus;
  artifactPrefix: string | null;
  pruned: boolean;
}

/** What the catalog says of the runs named by store prefixes. */
export async function runsForGarbage(db: Queryable, runIds: string[]): Promise<Map<string, RunForGarbage>> {
  if (runIds.length === 0) return new Map();
  const { rows } = await db.query<{ id: string; status: RunStatus; prefix: string | null; pruned: boolean }>(
    `select id, status, artifact->>'prefix' as prefix, pruned_at is not null as pruned from backstop.runs where id = any($1::uuid[])`,
    [runIds],
  );
  return new Map(rows.map((row) => [row.id, { status: row.status, artifactPrefix: row.prefix, pruned: row.pruned }]));
}

/** A multipart upload a run started and no event says was completed or aborted. */
export interface PendingUpload {
  runId: string;
  storeUrl: string;
  key: string;
  uploadId: string;
  startedAt: string;
}

/**
 * The multipart uploads left by runs of this target that are no longer active: a runner that
 * dies mid-upload (kill -9, a lost machine) cannot abort its upload, whose parts would stay
 * stored and billed. A run still active owns its uploads.
 */
export async function pendingUploads(db: Queryable, targetId: string): Promise<PendingUpload[]> {
  const { rows } = await db.query<{ run_id: string; store_url: string; key: string; upload_id: string; at: string }>(
    `select e.run_id, e.data->>'storeUrl' as store_url, e.data->>'key' as key, e.data->>'uploadId' as upload_id, e.at
     from backstop.run_events e join backstop.runs r on r.id = e.run_id
     where e.kind = 'upload_started' and r.target_id = $1 and r.status <> all($2::text[])
       and not exists (
         select 1 from backstop.run_events d
         where d.run_id = e.run_id and d.kind in ('upload_completed', 'upload_aborted') and d.data->>'uploadId' = e.data->>'uploadId')
     order by e.id`,
    [targetId, activeStatuses],
  );
  return rows.map((row) => ({ runId: row.run_id, storeUrl: row.store_url, key: row.key, uploadId: row.upload_id, startedAt: row.at }));
}

/** The database clock, ms. */
export async function databaseNow(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ now: string }>('select now() as now');
  return Date.parse(rows[0]!.now);
}
