import { assertTargetName } from '../../core/targetName.ts';
import { noHealth, sharedChannelHealth, targetChannelHealth } from '../../db/channels.ts';
import { listActiveAlarms, type AlarmRecord } from '../../db/alarms.ts';
import { getTarget, listTargets as listStoredTargets, type TargetRecord } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';
import { continuityOf, type TargetContinuity } from './targetWindow.ts';

/** A target as shown, with its active alarms (and, shown alone, its continuity: stream state, window and limits). */
export type TargetView = TargetRecord & { alarms: AlarmRecord[]; continuity?: TargetContinuity | null };

/** Every target by name, with its active alarms; database URLs and channel URLs are secrets and never part of them. */
export async function listTargets(deps: Pick<TargetDeps, 'pool'>): Promise<TargetView[]> {
  const [targets, alarms] = await Promise.all([listStoredTargets(deps.pool), listActiveAlarms(deps.pool)]);
  return targets.map((target) => ({ ...target, alarms: alarms.filter((alarm) => alarm.targetId === target.id) }));
}

/** One target with its active alarms and how each of its channels is doing; TARGET_NOT_FOUND when there is none of that name. */
export async function showTarget(deps: Pick<TargetDeps, 'pool'>, name: string): Promise<TargetView> {
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
    alarms: await listActiveAlarms(deps.pool, { targetId: target.id }),
    continuity: await continuityOf(deps, target),
  };
}
