import { assertTargetName } from '../../core/targetName.ts';
import { noHealth, sharedChannelHealth, targetChannelHealth } from '../../db/channels.ts';
import { getTarget, listTargets as listStoredTargets, type TargetRecord } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';

/** Every target by name; database URLs and channel URLs are secrets and never part of them. */
export function listTargets(deps: Pick<TargetDeps, 'pool'>): Promise<TargetRecord[]> {
  return listStoredTargets(deps.pool);
}

/** One target; TARGET_NOT_FOUND when there is none of that name. */
export async function showTarget(deps: Pick<TargetDeps, 'pool'>, name: string): Promise<TargetRecord> {
  assertTargetName(name, 'target');
  const target = await getTarget(deps.pool, name);
  // How each channel's deliveries are going: a channel that keeps failing shows it here.
  const own = await targetChannelHealth(deps.pool, target.id);
  const shared = await sharedChannelHealth(
    deps.pool,
    target.notifications.flatMap((channel) => (channel.channel ? [channel.channel] : [])),
  );
  return {
    ...target,
    notifications: target.notifications.map((channel) => ({
      ...channel,
      health: (channel.channel ? shared.get(channel.channel) : own.get(channel.id)) ?? noHealth,
    })),
  };
}
