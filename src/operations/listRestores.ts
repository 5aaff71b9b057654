import { restoreHistory, type RestoreRecord } from '../core/restoreHistory.ts';
import type { Queryable } from '../db/pool.ts';
import { listRestoreEvents } from '../db/restoreEvents.ts';
import { getTarget } from '../db/targets.ts';

/** The restore history of a target, newest first: what was restored, when, by whom, and how it ended. */
export async function listRestores(db: Queryable, targetName: string): Promise<{ target: string; items: RestoreRecord[] }> {
  const target = await getTarget(db, targetName);
  return { target: target.name, items: restoreHistory(await listRestoreEvents(db, target.id)) };
}
