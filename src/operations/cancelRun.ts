import type { Queryable } from '../db/pool.ts';
import { requestCancel, type RunRecord } from '../db/runRecords.ts';

/**
 * Cancels a run: a queued or dispatched one ends `cancelled` at once, a running one becomes
 * `cancelling` and its runner stops at its next heartbeat. A finished run is refused
 * (RUN_ALREADY_TERMINAL). `by` names who asked, in the run's events.
 */
export async function cancelRun(db: Queryable, runId: string, by: string): Promise<RunRecord> {
  return requestCancel(db, runId, `Cancelled on request (${by}).`);
}
