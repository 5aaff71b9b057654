import type { Queryable } from '../db/pool.ts';
import { getRun, type RunRecord } from '../db/runRecords.ts';

/** One run as the catalog records it (RUN_NOT_FOUND otherwise). */
export async function showRun(db: Queryable, runId: string): Promise<RunRecord> {
  return getRun(db, runId);
}
