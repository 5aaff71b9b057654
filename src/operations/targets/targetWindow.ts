import { baseOnlyContent, restoreWindow, type RestoreWindow } from '../../core/restoreWindow.ts';
import { assertTargetName } from '../../core/targetName.ts';
import { getStream, type StreamRecord } from '../../db/continuousStreams.ts';
import { windowRows } from '../../db/continuousTargets.ts';
import { getTarget, type ContinuousSettings, type TargetRecord } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';

/** The default bound of migration 021, for a target whose continuity is off (its archive may still be restorable). */
const DEFAULT_MAX_RPO_SECONDS = 300;

/** A target's continuity as shown: its stream's state and the restorable window with what limits it. */
export interface TargetContinuity {
  slot: string;
  publication: string;
  state: StreamRecord['state'];
  stoppedReason: string | null;
  stoppedAt: string | null;
  confirmedLsn: string | null;
  retainedWalBytes: number | null;
  unprotectedTables: StreamRecord['unprotectedTables'];
  /** The newest instant before which every commit is stored: the later of the newest stored commit and the last time the streamer was caught up. */
  recoveryPoint: string;
  /** Now minus the recovery point, as /metrics and the `rpo_exceeded` alarm measure it. */
  rpoSeconds: number;
  maxRpoSeconds: number;
  window: RestoreWindow;
}

export interface TargetWindow {
  target: string;
  continuous: ContinuousSettings | null;
  /** Null: the target was never continuous. */
  continuity: TargetContinuity | null;
}

/** The continuity of a stored target, or null when it was never continuous. */
export async function continuityOf(deps: Pick<TargetDeps, 'pool'>, target: TargetRecord): Promise<TargetContinuity | null> {
  const stream = await getStream(deps.pool, target.id);
  if (!stream) return null;
  const rows = await windowRows(deps.pool, target.id);
  const maxRpoSeconds = target.continuous?.maxRpoSeconds ?? DEFAULT_MAX_RPO_SECONDS;
  const window = restoreWindow({ ...rows, stream, maxRpoSeconds, baseOnly: baseOnlyContent(target.options.profile) });
  const rpoSeconds = window.rpoSeconds ?? Math.max(0, Math.round((Date.parse(rows.now) - Date.parse(stream.recoveryPoint)) / 1000));
  return {
    slot: stream.slotName,
    publication: stream.publicationName,
    state: stream.state,
    stoppedReason: stream.stoppedReason,
    stoppedAt: stream.stoppedAt,
    confirmedLsn: stream.confirmedLsn,
    retainedWalBytes: stream.retainedWalBytes,
    unprotectedTables: stream.unprotectedTables,
    recoveryPoint: stream.recoveryPoint,
    rpoSeconds,
    maxRpoSeconds,
    window,
  };
}

/**
 * `backstop window TARGET` and GET /api/v1/targets/{name}/window: from which second to which
 * second a point-in-time restore can bring the target back, the gaps, and what limits it.
 * Read-only; computed from the catalog (src/core/restoreWindow.ts).
 */
export async function targetWindow(deps: Pick<TargetDeps, 'pool'>, name: string): Promise<TargetWindow> {
  assertTargetName(name, 'target');
  const target = await getTarget(deps.pool, name);
  return { target: target.name, continuous: target.continuous, continuity: await continuityOf(deps, target) };
}
