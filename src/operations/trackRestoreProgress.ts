import type { Logger } from 'pino';
import { createProgressMeter, PROGRESS_REPORT_MS, type ProgressReading, type ReportedProgress } from '../core/runProgress.ts';
import type { Queryable } from '../db/pool.ts';
import { endRestoreProgress, startRestoreProgress, updateRestoreProgress } from '../db/runProgress.ts';
import type { RestoreProgress } from '../pipeline/restoreInput.ts';
import { restoreReading } from '../pipeline/progressReadings.ts';

export interface RestoreProgressTracker {
  /** For restoreArtifact's onProgress. */
  update(progress: RestoreProgress): void;
  /** Stops recording and removes the restore's progress from the catalog. Never rejects. */
  end(): Promise<void>;
}

/**
 * A restore's progress, for the person who started it (`show`: the CLI's bar) and, when the
 * restore is of a run in the catalog, for everyone else: written to restore_progress every
 * PROGRESS_REPORT_MS whether or not it changed, so that a row not written for a while means
 * its restore died (readers ignore it). A failed write is logged and skipped: progress never
 * fails a restore.
 */
export function trackRestoreProgress(options: {
  catalog: { db: Queryable; runId: string; log: Pick<Logger, 'warn'> } | null;
  show?: (progress: ReportedProgress) => void;
}): RestoreProgressTracker {
  const meter = createProgressMeter('restore', performance.now());
  let reading: ProgressReading | null = null;
  const catalog = options.catalog;
  let id: string | null = null;
  let writing: Promise<void> | null = null;
  let ended = false;
  const write = () => {
    if (!catalog || !reading || writing || ended) return;
    const progress = meter.read(reading, performance.now());
    writing = (async () => {
      try {
        if (id === null) id = await startRestoreProgress(catalog.db, catalog.runId, progress);
        else await updateRestoreProgress(catalog.db, id, progress);
      } catch (error) {
        catalog.log.warn({ err: error, runId: catalog.runId }, 'could not record restore progress');
      } finally {
        writing = null;
      }
    })();
  };
  const timer = catalog ? setInterval(write, PROGRESS_REPORT_MS) : undefined;
  timer?.unref();
  return {
    update(next) {
      const first = reading === null;
      reading = restoreReading(next);
      options.show?.(meter.read(reading, performance.now()));
      if (first) write();
    },
    async end() {
      ended = true;
      clearInterval(timer);
      await writing;
      const written = id;
      id = null;
      if (catalog && written !== null)
        await endRestoreProgress(catalog.db, written).catch((error) => catalog.log.warn({ err: error, runId: catalog.runId }, 'could not remove restore progress'));
    },
  };
}
