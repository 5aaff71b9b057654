import { assertTargetName } from '../../core/targetName.ts';
import { getTarget, listTargets as listStoredTargets, type TargetRecord } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';

/** Every target by name; database URLs and channel URLs are secrets and never part of them. */
export function listTargets(deps: Pick<TargetDeps, 'pool'>): Promise<TargetRecord[]> {
  return listStoredTargets(deps.pool);
}

/** One target; TARGET_NOT_FOUND when there is none of that name. */
export function showTarget(deps: Pick<TargetDeps, 'pool'>, name: string): Promise<TargetRecord> {
  assertTargetName(name, 'target');
  return getTarget(deps.pool, name);
}
