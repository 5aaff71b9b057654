import type { Queryable } from './pool.ts';
import { appendRunEvent } from './runEvents.ts';
import { createRun, getRun, type RunRecord } from './runRecords.ts';

export interface BaseBackupRequest {
  targetId: string;
  /** What asked for it (`schema_change`), the run's `trigger`. */
  trigger: string;
  /** Why, in words: the run's first event, which the operator reads in `backstop runs` and the dashboard. */
  reason: string;
  /** The source's commit time of the first transaction that showed the need: a backup that started before it cannot be the new base. */
  changedAt: string;
  runDeadlineMs: number;
}

/**
 * Queues a new base backup of a continuous target because its change archive needs one (its
 * schema changed), unless a backup of it that will dump the source after the change is
 * already there: a queued one, or one that started running since. That one becomes the new
 * base (its events say so), so a migration of ten ALTER TABLEs queues one backup, not ten. A
 * backup running since before the change dumps the old shape: a new one is queued after it.
 * The run is made by `backstop.create_run` like every other. Called within the transaction
 * that records the reason (the segment's row), so that a reason recorded never goes without
 * its backup.
 */
export async function queueBaseBackup(db: Queryable, request: BaseBackupRequest): Promise<{ run: RunRecord; queued: boolean }> {
  // Serializes the check and the insert among callers for one target (a streamer's lease makes
  // it one at a time already; a second process taking over must not slip between them).
  await db.query(`select pg_advisory_xact_lock(hashtext('backstop.base_backup'), hashtext($1))`, [request.targetId]);
  const { rows } = await db.query<{ id: string }>(
    `select id from backstop.runs
     where target_id = $1 and kind = 'backup'
       and (status in ('queued', 'dispatched') or (status = 'running' and started_at >= $2::timestamptz))
     order by created_at limit 1`,
    [request.targetId, request.changedAt],
  );
  if (rows[0]) {
    await appendRunEvent(db, { runId: rows[0].id, kind: 'base_needed', message: `${request.reason}: this backup becomes the new base`, data: { trigger: request.trigger } });
    return { run: await getRun(db, rows[0].id), queued: false };
  }
  const run = await createRun(db, { targetId: request.targetId, trigger: request.trigger, runDeadlineMs: request.runDeadlineMs, message: request.reason });
  return { run, queued: true };
}
