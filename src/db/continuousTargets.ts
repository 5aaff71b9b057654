import type { WindowBase, WindowSegment } from '../core/restoreWindow.ts';
import type { Queryable } from './pool.ts';

/**
 * The catalog side of a continuous target's settings on the target row (migration 021), and
 * what its restorable window is read from. Its stream's row (started, stopped, leased,
 * advanced) is src/db/continuousStreams.ts.
 */

/** Settings a caller may give; absent ones keep their stored value (or the column's default). */
export interface ContinuousSettingsUpdate {
  tables?: string[] | null;
  segmentSeconds?: number;
  segmentBytes?: number;
  slotWarnBytes?: number;
  slotLimitBytes?: number;
  maxRpoSeconds?: number;
}

/** Turns continuity on with these settings (or changes them), or off (null). */
export async function setTargetContinuous(db: Queryable, targetId: string, settings: ContinuousSettingsUpdate | null): Promise<void> {
  if (settings === null) {
    await db.query('update backstop.targets set continuous = false, updated_at = now() where id = $1', [targetId]);
    return;
  }
  await db.query(
    `update backstop.targets set continuous = true,
       continuous_tables = case when $2 then $3::text[] else continuous_tables end,
       segment_seconds = coalesce($4, segment_seconds), segment_bytes = coalesce($5, segment_bytes),
       slot_warn_bytes = coalesce($6, slot_warn_bytes), slot_limit_bytes = coalesce($7, slot_limit_bytes),
       max_rpo_seconds = coalesce($8, max_rpo_seconds), updated_at = now()
     where id = $1`,
    [
      targetId,
      settings.tables !== undefined,
      settings.tables ?? null,
      settings.segmentSeconds ?? null,
      settings.segmentBytes ?? null,
      settings.slotWarnBytes ?? null,
      settings.slotLimitBytes ?? null,
      settings.maxRpoSeconds ?? null,
    ],
  );
}

/** The base backups still stored (succeeded, not pruned) and every segment row of a target, for its window. */
export async function windowRows(db: Queryable, targetId: string): Promise<{ now: string; bases: WindowBase[]; segments: WindowSegment[] }> {
  const [now, bases, segments] = await Promise.all([
    db.query<{ now: string }>('select backstop.iso_utc(now()) as now'),
    db.query<WindowBase>(
      `select id as "runId", base_slot as slot, base_lsn::text as lsn, backstop.iso_utc(finished_at) as at
       from backstop.runs
       where target_id = $1 and kind = 'backup' and status = 'succeeded' and base_lsn is not null and pruned_at is null
       order by finished_at`,
      [targetId],
    ),
    db.query<WindowSegment>(
      `select slot_name as slot, start_lsn::text as "startLsn", end_lsn::text as "endLsn",
         backstop.iso_utc(first_commit_at) as "firstCommitAt", backstop.iso_utc(last_commit_at) as "lastCommitAt",
         coalesce(array(select jsonb_array_elements_text(manifest->'schemaChanges')), '{}') as "schemaChanges"
       from backstop.change_segments where target_id = $1 order by start_lsn, end_lsn`,
      [targetId],
    ),
  ]);
  return { now: now.rows[0]!.now, bases: bases.rows, segments: segments.rows };
}
