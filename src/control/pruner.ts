import { pruneTargets, type PruneDeps, type PruneReport } from '../operations/pruneTargets.ts';
import { startPeriodicTask } from './periodicTask.ts';

export interface Pruner {
  pruneOnce(): Promise<PruneReport | null>;
  stop(): Promise<void>;
}

/** Prunes every target every `intervalMs` (for the server); passes never overlap. */
export function startPruner(deps: PruneDeps, options: { intervalMs?: number; gracePeriodMs?: number; firstPassAfterMs?: number } = {}): Pruner {
  const intervalMs = options.intervalMs ?? 3_600_000;
  const log = deps.log.child({ component: 'pruner' });
  const prunePass = async (): Promise<PruneReport | null> => {
    try {
      const report = await pruneTargets({ ...deps, log }, { gracePeriodMs: options.gracePeriodMs });
      const deleted = report.targets.reduce((sum, target) => sum + target.deleted.length, 0);
      const garbage = report.targets.reduce((sum, target) => sum + target.garbage.length, 0);
      if (deleted + garbage > 0) log.info({ deleted, garbage }, 'prune pass done');
      return report;
    } catch (error) {
      log.warn({ err: error }, 'prune pass failed; will retry');
      return null;
    }
  };
  // The first pass comes soon after start, or a process restarted more often than the
  // interval would never prune.
  const task = startPeriodicTask(intervalMs, prunePass, { firstDelayMs: options.firstPassAfterMs ?? Math.min(intervalMs, 60_000) });
  return { pruneOnce: task.runOnce, stop: task.stop };
}
