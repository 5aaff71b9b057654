import { restoreEventKinds, type RestoreEvent } from '../core/restoreHistory.ts';
import type { Queryable } from './pool.ts';

/** The newest `limit` restore events of a target's backups (what src/core/restoreHistory.ts pairs). */
export async function listRestoreEvents(db: Queryable, targetId: string, limit = 1000): Promise<RestoreEvent[]> {
  const { rows } = await db.query<{ id: string; run_id: string; at: string; kind: string; message: string | null; data: Record<string, unknown> | null }>(
    `select e.id, e.run_id, e.at, e.kind, e.message, e.data
     from backstop.run_events e join backstop.runs r on r.id = e.run_id
     where r.target_id = $1 and r.kind = 'backup' and e.kind = any($2::text[])
     order by e.id desc limit $3`,
    [targetId, restoreEventKinds, limit],
  );
  return rows.map((row) => ({ id: Number(row.id), runId: row.run_id, at: row.at, kind: row.kind, message: row.message, data: row.data }));
}
