import type { Queryable } from '../db/pool.ts';
import { listRunEvents as readRunEvents, type RunEventRecord as RunEvent } from '../db/runEvents.ts';
import { getRun, type RunRecord } from '../db/runRecords.ts';

/** A run and its events after `afterId` (all of them by default), oldest first. */
export async function listRunEvents(db: Queryable, runId: string, afterId = 0): Promise<{ run: RunRecord; events: RunEvent[] }> {
  const run = await getRun(db, runId);
  return { run, events: await readRunEvents(db, run.id, afterId) };
}
