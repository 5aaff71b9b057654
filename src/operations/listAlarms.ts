import { z } from 'zod';
import { parseInput } from '../core/inputProblems.ts';
import { listActiveAlarms, type AlarmRecord } from '../db/alarms.ts';
import type { Queryable } from '../db/pool.ts';
import { getTarget } from '../db/targets.ts';
import { targetNameSchema } from './targets/targetInput.ts';

export type { AlarmRecord } from '../db/alarms.ts';

export const alarmListQuery = z.strictObject({
  target: targetNameSchema.optional().describe('Only this target’s alarms.'),
});

/** The alarms active now, of every target or of one (TARGET_NOT_FOUND for an unknown name). */
export async function listAlarms(db: Queryable, query: z.input<typeof alarmListQuery> = {}): Promise<AlarmRecord[]> {
  const filter = parseInput(alarmListQuery, query);
  if (filter.target === undefined) return listActiveAlarms(db);
  const target = await getTarget(db, filter.target);
  return listActiveAlarms(db, { targetId: target.id });
}
