import { activeStatuses, leasedStatuses } from '../core/runState.ts';
import type { ReportedProgress } from '../core/runProgress.ts';
import type { Queryable } from './pool.ts';

/**
 * Progress in the catalog: a runner's on its run's row (written with every heartbeat, and
 * between heartbeats on its own, fenced by the lease like every runner write), a restore's in
 * restore_progress. Each is stamped with the catalog's clock as `updatedAt`.
 */

/** The catalog's clock as JSON text (the pg type parsers only see top-level columns). */
export const catalogNowJson = `to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * SQL for the progress a runner's write leaves on its run, `param` being the new progress:
 * the new one, unless the stored one is newer by the runner's own clock. A heartbeat and a
 * progress report travel separately (over HTTP, in parallel) and may land out of order; the
 * older must not undo the newer, or a count would go back. A new attempt starts from null.
 */
export const newerProgressSql = (param: string) => `case
  when ${param}::jsonb is null then progress
  when (progress->>'elapsedMs')::float8 > (${param}::jsonb->>'elapsedMs')::float8 then progress
  else ${param}::jsonb || jsonb_build_object('updatedAt', ${catalogNowJson}) end`;

/** A restore not written for this long has no process behind it any more. */
export const RESTORE_PROGRESS_STALE_MS = 30_000;

/**
 * The plain size of the target's newest succeeded backup (what its runner last reported,
 * which its finalize made final): the estimate of the next backup's total.
 */
export async function previousBackupBytes(db: Queryable, targetId: string): Promise<number | null> {
  const { rows } = await db.query<{ bytes: number | null }>(
    `select case when jsonb_typeof(progress->'bytesDone') = 'number' then (progress->>'bytesDone')::float8
                 when jsonb_typeof(progress->'bytesDumped') = 'number' then (progress->>'bytesDumped')::float8 end as bytes
     from backstop.runs
     where target_id = $1 and kind = 'backup' and status = 'succeeded'
     order by finished_at desc
     limit 1`,
    [targetId],
  );
  return rows[0]?.bytes ?? null;
}

/**
 * Records a runner's progress between heartbeats. It leaves the lease alone, so the row's
 * indexed columns do not change and the update stays cheap (a heap-only tuple) at one a
 * second. False when the lease no longer holds the run (the heartbeat finds out why); true
 * also when newer progress was already there (see newerProgressSql).
 */
export async function reportRunProgress(db: Queryable, input: { runId: string; leaseId: string; progress: ReportedProgress }): Promise<boolean> {
  const { rowCount } = await db.query(
    `update backstop.runs set progress = ${newerProgressSql('$3')}
     where id = $1 and lease_id = $2 and status = any($4::text[]) and lease_expires_at > now()`,
    [input.runId, input.leaseId, JSON.stringify(input.progress), leasedStatuses],
  );
  return (rowCount ?? 0) > 0;
}

/** Starts recording a restore of `runId`'s backup; removes what dead restores left behind. */
export async function startRestoreProgress(db: Queryable, runId: string, progress: ReportedProgress): Promise<string> {
  await db.query(`delete from backstop.restore_progress where updated_at < now() - interval '1 hour'`);
  const { rows } = await db.query<{ id: string }>(
    `insert into backstop.restore_progress (run_id, progress) values ($1, $2::jsonb || jsonb_build_object('updatedAt', ${catalogNowJson})) returning id`,
    [runId, JSON.stringify(progress)],
  );
  return rows[0]!.id;
}

export async function updateRestoreProgress(db: Queryable, id: string, progress: ReportedProgress): Promise<void> {
  await db.query(`update backstop.restore_progress set progress = $2::jsonb || jsonb_build_object('updatedAt', ${catalogNowJson}), updated_at = now() where id = $1`, [
    id,
    JSON.stringify(progress),
  ]);
}

export async function endRestoreProgress(db: Queryable, id: string): Promise<void> {
  await db.query('delete from backstop.restore_progress where id = $1', [id]);
}

/**
 * SQL for the progress a run shows (`r` is the run): a restore of it under way, else its
 * own. A terminal run's own progress is how its work ended.
 */
export const shownProgressSql = `coalesce(
  (select rp.progress from backstop.restore_progress rp
   where rp.run_id = r.id and rp.updated_at > now() - interval '${RESTORE_PROGRESS_STALE_MS / 1000} seconds'
   order by rp.updated_at desc limit 1),
  r.progress)`;

export interface LiveProgress {
  runId: string;
  targetName: string;
  runKind: 'backup' | 'verify';
  status: string;
  progress: unknown;
}

/**
 * Every run with work under way that reports progress: active runs (their own) and backups
 * being restored (the restore's). Two index-friendly halves rather than one OR, since every
 * open feed of all runs asks this once a second: the active half matches the partial index
 * on active runs (its status list written out as the index has it), the restore half reads
 * the few rows of restore_progress.
 */
export async function listLiveProgress(db: Queryable): Promise<LiveProgress[]> {
  const active = activeStatuses.map((status) => `'${status}'`).join(', ');
  const { rows } = await db.query<{ id: string; target_name: string; kind: 'backup' | 'verify'; status: string; progress: unknown }>(
    `(select r.id, t.name as target_name, r.kind, r.status, r.progress
      from backstop.runs r join backstop.targets t on t.id = r.target_id
      where r.status in (${active}) and r.progress is not null)
     union all
     (select distinct on (r.id) r.id, t.name, r.kind, r.status, rp.progress
      from backstop.restore_progress rp join backstop.runs r on r.id = rp.run_id join backstop.targets t on t.id = r.target_id
      where rp.updated_at > now() - interval '${RESTORE_PROGRESS_STALE_MS / 1000} seconds' and r.status not in (${active})
      order by r.id, rp.updated_at desc)`,
  );
  return rows.map((row) => ({ runId: row.id, targetName: row.target_name, runKind: row.kind, status: row.status, progress: row.progress }));
}
