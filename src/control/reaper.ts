import type { Logger } from 'pino';
import { startPeriodicTask } from './periodicTask.ts';
import type { Queryable } from '../db/pool.ts';
import { reapRuns, type ReapedRun } from '../db/runLeases.ts';

export interface Reaper {
  /** Runs one pass now (also what the timer calls). */
  reapOnce(): Promise<ReapedRun[]>;
  /** No further passes; resolves once the pass under way has ended. */
  stop(): Promise<void>;
}

/**
 * Reaps overdue runs every `intervalMs`. Runs in every long-lived Backstop process; many
 * reapers at once are safe because each pass is one conditional UPDATE.
 */
export function startReaper(db: Queryable, intervalMs: number, log: Logger, onReaped?: (runs: ReapedRun[]) => void): Reaper {
  const task = startPeriodicTask(intervalMs, async (): Promise<ReapedRun[]> => {
    try {
      const reaped = await reapRuns(db);
      for (const run of reaped) {
        log.warn({ runId: run.id, from: run.previousStatus, to: run.status, reason: run.errorCode }, 'reaped overdue run');
      }
      if (reaped.length > 0) onReaped?.(reaped);
      return reaped;
    } catch (error) {
      log.warn({ err: error }, 'reaper pass failed; will retry');
      return [];
    }
  });
  return { reapOnce: task.runOnce, stop: task.stop };
}
