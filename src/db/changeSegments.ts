import type { Queryable } from './pool.ts';

/** A stored segment as the catalog indexes it: its manifest key, and its manifest (to be parsed: it is input). */
export interface ChangeSegmentRow {
  manifestKey: string;
  manifest: unknown;
}

/** Every segment the catalog knows of a target, in LSN order per slot. */
export async function listChangeSegments(db: Queryable, targetId: string): Promise<ChangeSegmentRow[]> {
  const { rows } = await db.query<{ manifest_key: string; manifest: unknown }>(
    `select manifest_key, manifest from backstop.change_segments where target_id = $1 order by slot_name, start_lsn, end_lsn`,
    [targetId],
  );
  return rows.map((row) => ({ manifestKey: row.manifest_key, manifest: row.manifest }));
}

export interface ContinuousBaseRow {
  runId: string;
  baseLsn: string;
  slot: string | null;
  finishedAt: string;
}

/** The target's succeeded base backups: backup runs that recorded the consistent LSN they were dumped at. */
export async function listContinuousBases(db: Queryable, targetId: string): Promise<ContinuousBaseRow[]> {
  const { rows } = await db.query<{ id: string; base_lsn: string; base_slot: string | null; finished_at: string }>(
    `select id, base_lsn::text as base_lsn, base_slot, finished_at from backstop.runs
      where target_id = $1 and kind = 'backup' and status = 'succeeded' and artifact is not null and base_lsn is not null and finished_at is not null
      order by base_lsn desc`,
    [targetId],
  );
  return rows.map((row) => ({ runId: row.id, baseLsn: row.base_lsn, slot: row.base_slot, finishedAt: row.finished_at }));
}

/** Tables the target's publication leaves out (no key, no replica identity): restored from base backups only. */
export async function unprotectedTables(db: Queryable, targetId: string): Promise<Array<{ schema: string; table: string }>> {
  const { rows } = await db.query<{ unprotected_tables: unknown }>(`select unprotected_tables from backstop.continuous_streams where target_id = $1`, [targetId]);
  const listed = rows[0]?.unprotected_tables;
  if (!Array.isArray(listed)) return [];
  return listed
    .filter((entry): entry is { schema: string; table: string } => typeof entry?.schema === 'string' && typeof entry?.table === 'string')
    .map((entry) => ({ schema: entry.schema, table: entry.table }));
}

/**
 * Forgets the segments garbage collection deleted from the store, and the rows an interrupted
 * pass left of segments already gone: every row ending at or before `endingBy` whose manifest
 * is not among `stillStored`.
 */
export async function forgetChangeSegments(db: Queryable, targetId: string, input: { deleted: string[]; endingBy: string; stillStored: string[] }): Promise<number> {
  const { rowCount } = await db.query(
    `delete from backstop.change_segments
     where target_id = $1 and (manifest_key = any($2::text[]) or (end_lsn <= $3::pg_lsn and not (manifest_key = any($4::text[]))))`,
    [targetId, input.deleted, input.endingBy, input.stillStored],
  );
  return rowCount ?? 0;
}
