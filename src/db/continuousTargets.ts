import type { UnprotectedTable } from '../core/continuousRules.ts';
import type { WindowBase, WindowSegment, WindowStream } from '../core/restoreWindow.ts';
import { recoveryPointSql } from './continuousStreams.ts';
import type { Queryable } from './pool.ts';

/**
 * The catalog side of a continuous target's setup and lifecycle: its settings on the target
 * row (migration 021), its `continuous_streams` row, and what the restorable window is read
 * from. The streamer's lease and segments are written elsewhere; this module only starts and
 * stops a stream.
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

/**
 * The stream row of a newly made slot: state `starting` until its first base backup succeeds.
 * Its confirmed position starts at the slot's consistent point: the archive holds every
 * transaction from there on, so the streamer's first segment starts there, before every base
 * backup's own point, even when the slot was told of quiet stretches before anything was
 * stored (segments chain from the last one stored, see src/continuous/streamer.ts).
 * A target enabled again keeps its row, whose `generation` grows, so a streamer of the
 * earlier stream that wakes up is fenced off; everything else starts afresh.
 */
export async function startStream(db: Queryable, input: { targetId: string; slot: string; publication: string; unprotected: UnprotectedTable[]; startLsn: string }): Promise<void> {
  await db.query(
    `insert into backstop.continuous_streams (target_id, slot_name, publication_name, unprotected_tables, confirmed_lsn)
     values ($1, $2, $3, $4::jsonb, $5::pg_lsn)
     on conflict (target_id) do update set slot_name = excluded.slot_name, publication_name = excluded.publication_name,
       unprotected_tables = excluded.unprotected_tables, state = 'starting', stopped_reason = null, stopped_at = null,
       confirmed_lsn = excluded.confirmed_lsn, last_commit_at = null, retained_wal_bytes = null, last_pass_at = null,
       lease_owner = null, lease_expires_at = null, generation = backstop.continuous_streams.generation + 1, updated_at = now()`,
    [input.targetId, input.slot, input.publication, JSON.stringify(input.unprotected), input.startLsn],
  );
}

/** A re-planned publication of a running stream: only the list of tables left out changes. */
export async function recordUnprotectedTables(db: Queryable, targetId: string, unprotected: UnprotectedTable[]): Promise<void> {
  await db.query('update backstop.continuous_streams set unprotected_tables = $2::jsonb, updated_at = now() where target_id = $1', [targetId, JSON.stringify(unprotected)]);
}

/**
 * Marks the stream stopped, with why, and ends its lease: a streamer renewing it finds the
 * state changed and stops. Its segments' rows stay: the window they cover stays restorable.
 */
export async function stopStream(db: Queryable, targetId: string, reason: string): Promise<void> {
  await db.query(
    `update backstop.continuous_streams set state = 'stopped', stopped_reason = $2, stopped_at = now(),
       lease_owner = null, lease_expires_at = null, generation = generation + 1, updated_at = now()
     where target_id = $1`,
    [targetId, reason],
  );
}

export interface StreamRecord extends WindowStream {
  slot: string;
  publication: string;
  confirmedLsn: string | null;
  retainedWalBytes: number | null;
  /** The newest instant before which every commit is stored (what the RPO is measured from). */
  recoveryPoint: string;
}

export async function findStream(db: Queryable, targetId: string): Promise<StreamRecord | null> {
  const { rows } = await db.query<{
    slot_name: string;
    publication_name: string;
    state: StreamRecord['state'];
    stopped_reason: string | null;
    stopped_at: string | null;
    last_commit_at: string | null;
    confirmed_lsn: string | null;
    retained_wal_bytes: number | null;
    unprotected_tables: UnprotectedTable[];
    recovery_point: string;
  }>(
    `select slot_name, publication_name, state, stopped_reason, backstop.iso_utc(stopped_at) as stopped_at, backstop.iso_utc(last_commit_at) as last_commit_at,
       confirmed_lsn::text as confirmed_lsn, retained_wal_bytes, unprotected_tables, backstop.iso_utc(${recoveryPointSql}) as recovery_point
     from backstop.continuous_streams s where target_id = $1`,
    [targetId],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    slot: row.slot_name,
    publication: row.publication_name,
    state: row.state,
    stoppedReason: row.stopped_reason,
    stoppedAt: row.stopped_at,
    lastCommitAt: row.last_commit_at,
    confirmedLsn: row.confirmed_lsn,
    retainedWalBytes: row.retained_wal_bytes === null ? null : Number(row.retained_wal_bytes),
    unprotectedTables: Array.isArray(row.unprotected_tables) ? row.unprotected_tables : [],
    recoveryPoint: row.recovery_point,
  };
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
