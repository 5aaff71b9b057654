import { activeStatuses, type RunStatus } from '../core/runState.ts';
import type { Queryable } from './pool.ts';
import type { Artifact } from '../core/artifact.ts';

/** A succeeded run with an artifact, as retention sees it. */
export interface RetainedBackup {
  id: string;
  /** When the backup was taken: the run's start (its creation if it never recorded one). */
  takenAt: string;
  /** The run's creation (dates its folder) and its succeeding attempt. */
  createdAt: string;
  attempt: number;
  verified: boolean;
  artifact: Artifact;
  /** Set when an earlier prune deleted its objects but not yet its row. */
  prunedAt: string | null;
  /** A base backup's consistent LSN (continuous targets), as the catalog recorded it from its manifest. */
  baseLsn: string | null;
}

// The same order as planRetention (taken desc, id desc); markRunPruned re-checks protection with it.
const takenAt = 'coalesce(r.started_at, r.created_at)';

/** Succeeded runs with an artifact of a target, newest first; those marked pruned included. */
export async function listRetainedBackups(db: Queryable, targetId: string): Promise<RetainedBackup[]> {
  const { rows } = await db.query<{
    id: string;
    taken_at: string;
    created_at: string;
    attempt: number;
    verified: boolean;
    artifact: Artifact;
    pruned_at: string | null;
    base_lsn: string | null;
  }>(
    `select r.id, ${takenAt} as taken_at, r.created_at, r.attempt, coalesce(r.verification->>'status' = 'passed', false) as verified, r.artifact, r.pruned_at,
       r.base_lsn::text as base_lsn
     from backstop.runs r
     where r.target_id = $1 and r.kind = 'backup' and r.status = 'succeeded' and r.artifact is not null
     order by ${takenAt} desc, r.id desc`,
    [targetId],
  );
  return rows.map((row) => ({
    id: row.id,
    takenAt: row.taken_at,
    createdAt: row.created_at,
    attempt: row.attempt,
    verified: row.verified,
    artifact: row.artifact,
    prunedAt: row.pruned_at,
    baseLsn: row.base_lsn,
  }));
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
  id: string;
  targetId: string;
  kind: string;
  status: RunStatus;
  attempt: number;
  createdAt: string;
  artifact: { storeUrl: string; prefix: string } | null;
  pruned: boolean;
}

/** What the catalog says of the runs named by store prefixes. */
export async function runsForGarbage(db: Queryable, runIds: string[]): Promise<Map<string, RunForGarbage>> {
  if (runIds.length === 0) return new Map();
  const { rows } = await db.query<{
    id: string;
    target_id: string;
    kind: string;
    status: RunStatus;
    attempt: number;
    created_at: string;
    store_url: string | null;
    prefix: string | null;
    pruned: boolean;
  }>(
    `select id, target_id, kind, status, attempt, created_at, artifact->>'storeUrl' as store_url, artifact->>'prefix' as prefix, pruned_at is not null as pruned
     from backstop.runs where id = any($1::uuid[])`,
    [runIds],
  );
  return new Map(
    rows.map((row) => [
      row.id,
      {
        id: row.id,
        targetId: row.target_id,
        kind: row.kind,
        status: row.status,
        attempt: row.attempt,
        createdAt: row.created_at,
        artifact: row.store_url !== null && row.prefix !== null ? { storeUrl: row.store_url, prefix: row.prefix } : null,
        pruned: row.pruned,
      },
    ]),
  );
}

/** A complete backup in a target's folder that no catalog row vouches for (see planGarbage). */
export interface UnknownBackup {
  prefix: string;
  runId: string;
  attempt: number;
  reason: string;
  detail: string;
  objects: number;
  newestAt: string;
  firstSeenAt: string;
  lastSeenAt: string;
}

/** Replaces what the catalog knows of a target's unknown backups with what a prune pass found. */
export async function recordUnknownBackups(
  db: Queryable,
  targetId: string,
  found: readonly { prefix: string; runId: string; attempt: number; reason: string; detail: string; objects: number; newestAt: string }[],
): Promise<void> {
  await db.query(
    `with found as (
       select * from jsonb_to_recordset($2::jsonb)
         as f(prefix text, "runId" uuid, attempt integer, reason text, detail text, objects integer, "newestAt" timestamptz)
     ), gone as (
       delete from backstop.unknown_backups u where u.target_id = $1 and u.prefix not in (select prefix from found)
     )
     insert into backstop.unknown_backups as u (target_id, prefix, run_id, attempt, reason, detail, objects, newest_at)
     select $1, prefix, "runId", attempt, reason, detail, objects, "newestAt" from found
     on conflict (target_id, prefix) do update
       set reason = excluded.reason, detail = excluded.detail, objects = excluded.objects, newest_at = excluded.newest_at, last_seen_at = now()`,
    [targetId, JSON.stringify(found)],
  );
}

/** Forgets unknown backups of a target that were deleted on request. */
export async function forgetUnknownBackups(db: Queryable, targetId: string, prefixes: readonly string[]): Promise<void> {
  await db.query('delete from backstop.unknown_backups where target_id = $1 and prefix = any($2::text[])', [targetId, prefixes]);
}

/** The unknown backups the last prune pass of a target found, by prefix. */
export async function listUnknownBackups(db: Queryable, targetId: string): Promise<UnknownBackup[]> {
  const { rows } = await db.query<{
    prefix: string;
    run_id: string;
    attempt: number;
    reason: string;
    detail: string;
    objects: number;
    newest_at: Date | string;
    first_seen_at: Date | string;
    last_seen_at: Date | string;
  }>('select * from backstop.unknown_backups where target_id = $1 order by prefix', [targetId]);
  const iso = (value: Date | string) => new Date(value).toISOString();
  return rows.map((row) => ({
    prefix: row.prefix,
    runId: row.run_id,
    attempt: row.attempt,
    reason: row.reason,
    detail: row.detail,
    objects: row.objects,
    newestAt: iso(row.newest_at),
    firstSeenAt: iso(row.first_seen_at),
    lastSeenAt: iso(row.last_seen_at),
  }));
}

/** How many unknown backups each target has (targets with none included, as 0), for metrics. */
export async function countUnknownBackups(db: Queryable): Promise<Map<string, number>> {
  const { rows } = await db.query<{ name: string; count: number }>(
    `select t.name, count(u.prefix)::int as count
     from backstop.targets t left join backstop.unknown_backups u on u.target_id = t.id
     group by t.name`,
  );
  return new Map(rows.map((row) => [row.name, row.count]));
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
