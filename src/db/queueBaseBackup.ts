import { activeStatuses } from '../core/runState.ts';
import type { Queryable } from './pool.ts';
import { createRun, getRun, type RunRecord } from './runRecords.ts';

export interface BaseBackupRequest {
  targetId: string;
  /** What asked for it (`schema_change`), the run's `trigger`. */
  trigger: string;
  /** Why, in words: the run's first event, which the operator reads in `backstop runs` and the dashboard. */
  reason: string;
  runDeadlineMs: number;
}

/**
 * Queues a new base backup of a continuous target because its change archive needs one (its
 * schema changed), unless a backup of it is already queued or running: that one becomes the
 * new base, so a migration of ten ALTER TABLEs queues one backup, not ten. The run is made by
 * `backstop.create_run` like every other. Called within the transaction that records the
 * reason (the segment's row), so that a reason recorded never goes without its backup.
 */
export async function queueBaseBackup(db: Queryable, request: BaseBackupRequest): Promise<{ run: RunRecord; queued: boolean }> {
  // Serializes the check and the insert among callers for one target (a streamer's lease makes
  // it one at a time already; a second process taking over must not slip between them).
  await db.query(`select pg_advisory_xact_lock(hashtext('backstop.base_backup'), hashtext($1))`, [request.targetId]);
  const { rows } = await db.query<{ id: string }>(`select id from backstop.runs where target_id = $1 and kind = 'backup' and status = any($2::text[]) order by created_at limit 1`, [
    request.targetId,
    activeStatuses,
  ]);
  if (rows[0]) return { run: await getRun(db, rows[0].id), queued: false };
  const run = await createRun(db, { targetId: request.targetId, trigger: request.trigger, runDeadlineMs: request.runDeadlineMs, message: request.reason });
  return { run, queued: true };
}
