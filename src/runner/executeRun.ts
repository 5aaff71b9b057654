import { BackstopError, describeError, isBackstopError } from '../core/errors.ts';
import type { RunnerOutcome } from '../core/runState.ts';
import type { Artifact } from '../core/artifact.ts';
import { createProgressMeter, type ProgressReading, type ReportedProgress } from '../core/runProgress.ts';
import type { ClaimedRun, RunRecord } from '../db/runRecords.ts';
import { deletePrefix } from '../pipeline/backup.ts';
import { openStore } from '../storage/openStore.ts';
import type { Store } from '../storage/store.ts';
import { finalizeWithRetry } from './finalizeWithRetry.ts';
import { performBackup } from './performBackup.ts';
import { performDrill } from './performDrill.ts';
import { backupReading, restoreReading } from '../pipeline/progressReadings.ts';
import { startHeartbeat, type HeartbeatOptions } from './heartbeat.ts';
import { startThreadedHeartbeat } from './heartbeatThread.ts';
import { runnerCatalogOf, type RunnerDeps } from './runnerDeps.ts';

export type StopRequest = { kind: 'cancel'; reason: string } | { kind: 'release'; reason: string };

export interface ExecuteOptions {
  onProgress?: (progress: ReportedProgress) => void;
}

export interface RunExecution {
  /** Asks the run to stop: `cancel` ends it cancelled, `release` hands it back to the queue. */
  stop(request: StopRequest): void;
  /** The run as it ended (or was handed back). Rejects with LEASE_LOST when another outcome won. */
  result: Promise<RunRecord | null>;
}

/**
 * Executes one claimed run: heartbeats for its whole life, runs the backup with an abort
 * signal wired to cancel requests, lease loss and local stop requests, and always ends in a
 * finalize (or a release), whatever the backup did.
 */
export function executeRun(deps: RunnerDeps, run: ClaimedRun, options: ExecuteOptions = {}): RunExecution {
  const catalog = runnerCatalogOf(deps);
  const controller = new AbortController();
  let stopRequest: StopRequest | null = null;
  let leaseLostReason: string | null = null;
  // The newest counts of the work; the meter turns them into progress whenever it is asked,
  // so the rate and the elapsed time stay true while the counts stand still.
  const meter = createProgressMeter(run.kind === 'verify' ? 'drill' : 'backup', performance.now());
  let reading: ProgressReading | null = null;
  const progress = () => (reading ? meter.read(reading, performance.now()) : null);
  const onReading = (next: ProgressReading) => {
    reading = next;
    if (options.onProgress) options.onProgress(progress()!);
  };
  const log = deps.log.child({ runId: run.id, attempt: run.attempt });

  const stop = (request: StopRequest) => {
    if (controller.signal.aborted) return;
    stopRequest = request;
    controller.abort(new BackstopError('CANCELLED', request.reason));
  };

  // The heartbeat runs in its own thread, with its own connection to the catalog (or its own
  // requests to the API), where no work on this thread can starve it. A catalog that offers
  // no such channel is renewed from this thread.
  const channel = catalog.heartbeatChannel;
  const heartbeatOptions: HeartbeatOptions = {
    renewLease: catalog.renewLease,
    runId: run.id,
    leaseId: run.leaseId,
    leaseTtlMs: deps.config.leaseTtlMs,
    intervalMs: deps.config.heartbeatIntervalMs,
    log,
    progress,
    reportProgress: catalog.reportProgress,
    onLeaseLost: (reason) => {
      leaseLostReason = reason;
      log.error({ reason }, 'lease lost; stopping the run');
      if (!controller.signal.aborted) controller.abort(new BackstopError('LEASE_LOST', `Lease lost: ${reason}`));
    },
    onCancelRequested: () => {
      log.info('cancel requested through the catalog');
      stop({ kind: 'cancel', reason: 'Cancelled on request.' });
    },
  };
  const heartbeat = channel ? startThreadedHeartbeat({ ...heartbeatOptions, channel }) : startHeartbeat(heartbeatOptions);

  // Events are appended in order, one after another, and all of them before the finalize.
  // The promise returned settles once this event is recorded (or could not be: never rejects).
  let events = Promise.resolve();
  const event = (kind: string, message: string, data?: Record<string, unknown>): Promise<void> => {
    events = events.then(() =>
      catalog.appendEvent({ runId: run.id, leaseId: run.leaseId, kind, message, data }).then(
        () => {},
        (error) => log.warn({ err: error, kind }, 'could not record run event'),
      ),
    );
    return events;
  };

  const result = (async (): Promise<RunRecord | null> => {
    let outcome: RunnerOutcome;
    let error: { code: string; message: string } | null = null;
    let artifact: Artifact | null = null;
    let store: Store | undefined;
    try {
      try {
        const target = await catalog.target(run);
        if (run.kind === 'verify') {
          ({ outcome, error } = await performDrill({ ...deps, catalog }, run, {
            signal: controller.signal,
            onEvent: event,
            onProgress: (next) => onReading(restoreReading(next)),
          }));
        } else {
          store = await openStore(target.storeUrl);
          artifact = await performBackup(deps, run, target, store, {
            signal: controller.signal,
            onProgress: (next) => onReading(backupReading(next, target.previousBackupBytes ?? null)),
            onEvent: event,
          });
          outcome = 'succeeded';
        }
      } catch (caught) {
        if (leaseLostReason !== null) {
          throw new BackstopError('LEASE_LOST', `Run ${run.id} lost its lease (${leaseLostReason}); its outcome is decided elsewhere.`, {
            cause: caught,
          });
        }
        const request = stopRequest as StopRequest | null;
        if (request?.kind === 'release') {
          const released = await catalog.release({ runId: run.id, leaseId: run.leaseId, reason: request.reason }).catch((releaseError) => {
            log.error({ err: releaseError }, 'could not hand the run back; the reaper will');
            return false;
          });
          log.info({ released }, 'run handed back to the queue');
          return null;
        }
        if (request?.kind === 'cancel' || isBackstopError(caught, 'CANCELLED')) {
          outcome = 'cancelled';
          error = { code: 'CANCELLED', message: request?.reason ?? describeError(caught).message };
        } else {
          outcome = 'failed';
          error = describeError(caught);
          log.warn({ err: caught }, 'backup failed');
        }
      }
      await events;
      // A drill that passed restored every byte, whatever the last look at pg_restore saw.
      const last = reading as ProgressReading | null;
      if (last && outcome === 'succeeded' && run.kind === 'verify') reading = { ...last, phase: 'done', bytesDone: last.expected?.bytes ?? last.bytesDone };
      try {
        const finished = await finalizeWithRetry(
          catalog.finalize,
          // The final figures go with the outcome: a later backup estimates its total from them.
          { runId: run.id, leaseId: run.leaseId, outcome, error, artifact, progress: progress() },
          { until: () => heartbeat.leaseValidUntil(), log },
        );
        log.info({ status: finished.status }, 'run finished');
        return finished;
      } catch (finalizeError) {
        // LEASE_LOST and ARTIFACT_REJECTED are definitive: the catalog will never list this
        // attempt's artifact, so remove it. When the catalog was merely unreachable, a
        // finalize may have committed with its answer lost: keep the files (garbage collection
        // removes them if the run ends up anything but succeeded) rather than risk deleting a
        // recorded backup.
        if (artifact && store && (isBackstopError(finalizeError, 'LEASE_LOST') || isBackstopError(finalizeError, 'ARTIFACT_REJECTED'))) {
          await deletePrefix(store, artifact.prefix).catch(() => {});
        }
        throw finalizeError;
      }
    } finally {
      heartbeat.stop();
      await store?.close();
    }
  })();

  return { stop, result };
}
