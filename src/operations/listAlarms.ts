import { assertTargetName } from '../core/targetName.ts';
import { listActiveAlarms, type AlarmRecord } from '../db/alarms.ts';
import type { Queryable } from '../db/pool.ts';
import { getTarget } from '../db/targets.ts';

export type { AlarmRecord } from '../db/alarms.ts';

/** The alarms active now, of every target or of one (TARGET_NOT_FOUND for an unknown name). */
export async function listAlarms(db: Queryable, filter: { target?: string } = {}): Promise<AlarmRecord[]> {
  if (filter.target === undefined) return listActiveAlarms(db);
  assertTargetName(filter.target, 'target');
  const target = await getTarget(db, filter.target);
  return listActiveAlarms(db, { targetId: target.id });
}
