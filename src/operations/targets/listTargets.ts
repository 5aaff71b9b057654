import { assertTargetName } from '../../core/targetName.ts';
import { noHealth, sharedChannelHealth, targetChannelHealth } from '../../db/channels.ts';
import { listActiveAlarms, type AlarmRecord } from '../../db/alarms.ts';
import { listStreamRpo, type StreamRpo } from '../../db/continuousStreams.ts';
import { getTarget, listTargets as listStoredTargets, type TargetRecord } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';
import { continuityOf, type TargetContinuity } from './targetWindow.ts';

/** A continuous target's current RPO in a list: the figure /metrics reports, against its bound. */
export interface TargetRpo {
  state: StreamRpo['state'];
  seconds: number;
  maxSeconds: number;
}

/**
 * A target as shown, with its active alarms (and, shown alone, its continuity: stream state,
 * window and limits; in a list, a continuous target's RPO).
 */
export type TargetView = TargetRecord & { alarms: AlarmRecord[]; continuity?: TargetContinuity | null; rpo?: TargetRpo | null };

/** Every target by name, with its active alarms; database URLs and channel URLs are secrets and never part of them. */
export async function listTargets(deps: Pick<TargetDeps, 'pool'>): Promise<TargetView[]> {
  const [targets, alarms, rpos] = await Promise.all([listStoredTargets(deps.pool), listActiveAlarms(deps.pool), listStreamRpo(deps.pool)]);
  const rpoOf = new Map(rpos.map((rpo) => [rpo.targetName, { state: rpo.state, seconds: Math.round(rpo.rpoSeconds), maxSeconds: rpo.maxRpoSeconds }]));
  return targets.map((target) => ({ ...target, alarms: alarms.filter((alarm) => alarm.targetId === target.id), rpo: rpoOf.get(target.name) ?? null }));
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
