import type { Logger } from 'pino';
import { createProgressMeter, PROGRESS_REPORT_MS, type ProgressReading, type ReportedProgress } from '../core/runProgress.ts';
import type { Queryable } from '../db/pool.ts';
import { endRestoreProgress, startRestoreProgress, updateRestoreProgress } from '../db/runProgress.ts';
import type { RestoreProgress } from '../pipeline/restoreInput.ts';
import { replayReading, restoreReading } from '../pipeline/progressReadings.ts';

/** What a stage after the base restore reports: a point-in-time restore's replay. */
export interface ReplayProgressReport {
  /** `done` of `total` transactions replayed; called as each is. */
  replaying(done: number, total: number): void;
}

export interface RestoreProgressTracker extends ReplayProgressReport {
  /** For restoreArtifact's onProgress. */
  update(progress: RestoreProgress): void;
  /** Stops recording and removes the restore's progress from the catalog. Never rejects. */
  end(): Promise<void>;
}

/** How often the replay's progress is shown to the person watching: it moves thousands of times a second. */
const REPLAY_SHOW_MS = 100;

/**
 * A restore's progress, for the person who started it (`show`: the CLI's bar) and, when the
 * restore is of a run in the catalog, for everyone else: written to restore_progress every
 * PROGRESS_REPORT_MS whether or not it changed, so that a row not written for a while means
 * its restore died (readers ignore it), and at once when a phase starts, so that every phase
 * shows, however short. A failed write is logged and skipped: progress never fails a restore.
 */
export function trackRestoreProgress(options: {
  catalog: { db: Queryable; runId: string; log: Pick<Logger, 'warn'> } | null;
  show?: (progress: ReportedProgress) => void;
}): RestoreProgressTracker {
  const meter = createProgressMeter('restore', performance.now());
  let restored: RestoreProgress | null = null;
  let reading: ProgressReading | null = null;
  let shownAt = -Infinity;
  const catalog = options.catalog;
  let id: string | null = null;
  let writing: Promise<void> | null = null;
  // A phase started while a write was in flight: written once that one is done (even when the restore ends meanwhile).
  let phaseUnwritten = false;
  let ended = false;
  const write = () => {
    if (!catalog || !reading || writing) return;
    writing = (async () => {
      try {
        do {
          phaseUnwritten = false;
          const progress = meter.read(reading, performance.now());
          if (id === null) id = await startRestoreProgress(catalog.db, catalog.runId, progress);
          else await updateRestoreProgress(catalog.db, id, progress);
        } while (phaseUnwritten);
      } catch (error) {
        catalog.log.warn({ err: error, runId: catalog.runId }, 'could not record restore progress');
      } finally {
        writing = null;
      }
    })();
  };
  const timer = catalog ? setInterval(() => ended || write(), PROGRESS_REPORT_MS) : undefined;
  timer?.unref();
  const next = (following: ProgressReading, showNow: boolean) => {
    const newPhase = reading?.phase !== following.phase;
    reading = following;
    const now = performance.now();
    if (showNow || newPhase || now - shownAt >= REPLAY_SHOW_MS) {
      shownAt = now;
      options.show?.(meter.read(following, now));
    }
    if (newPhase && !ended) {
      phaseUnwritten = true;
      write();
    }
  };
  return {
    update(progress) {
      restored = progress;
      next(restoreReading(progress), true);
    },
    replaying(done, total) {
      next(replayReading(restored, { done, total }), done === total);
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
