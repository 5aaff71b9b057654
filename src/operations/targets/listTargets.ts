import { assertTargetName } from '../../core/targetName.ts';
import { listActiveAlarms, type AlarmRecord } from '../../db/alarms.ts';
import { getTarget, listTargets as listStoredTargets, type TargetRecord } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';

/** A target as shown, with its active alarms. */
export type TargetView = TargetRecord & { alarms: AlarmRecord[] };

/** Every target by name, with its active alarms; database URLs and channel URLs are secrets and never part of them. */
export async function listTargets(deps: Pick<TargetDeps, 'pool'>): Promise<TargetView[]> {
  const [targets, alarms] = await Promise.all([listStoredTargets(deps.pool), listActiveAlarms(deps.pool)]);
  return targets.map((target) => ({ ...target, alarms: alarms.filter((alarm) => alarm.targetId === target.id) }));
}

/** One target with its active alarms; TARGET_NOT_FOUND when there is none of that name. */
export async function showTarget(deps: Pick<TargetDeps, 'pool'>, name: string): Promise<TargetView> {
  assertTargetName(name, 'target');
  const target = await getTarget(deps.pool, name);
  return { ...target, alarms: await listActiveAlarms(deps.pool, { targetId: target.id }) };
}
