import { assertTargetName } from '../../core/targetName.ts';
import { listUnknownBackups as listStoredUnknownBackups, type UnknownBackup } from '../../db/retention.ts';
import { getTarget } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';

/** Complete backups in a target's store folder that no catalog row vouches for, as the last garbage collection found them. */
export async function listUnknownBackups(deps: Pick<TargetDeps, 'pool'>, name: string): Promise<{ target: string; items: UnknownBackup[] }> {
  assertTargetName(name, 'target');
  const target = await getTarget(deps.pool, name);
  return { target: target.name, items: await listStoredUnknownBackups(deps.pool, target.id) };
}
