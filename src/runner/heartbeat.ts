import type { Logger } from 'pino';
import { PROGRESS_REPORT_MS, type ReportedProgress } from '../core/runProgress.ts';
import type { RunnerCatalog } from './runnerCatalog.ts';

export interface HeartbeatOptions {
  renewLease: RunnerCatalog['renewLease'];
  runId: string;
  leaseId: string;
  leaseTtlMs: number;
  intervalMs: number;
  log: Logger;
  progress: () => ReportedProgress | null;
  /**
   * Writes changed progress between renewals, every `progressIntervalMs` (PROGRESS_REPORT_MS):
   * a lease lasts tens of seconds, progress must not wait that long to be seen.
   */
  reportProgress?: RunnerCatalog['reportProgress'];
  progressIntervalMs?: number;
  /** The run was reaped, finished elsewhere, or the catalog was unreachable for a whole lease. */
  onLeaseLost: (reason: string) => void;
  onCancelRequested: () => void;
}

export interface Heartbeat {
  /** Local monotonic time (performance.now()) until which the lease surely holds. */
  leaseValidUntil(): number;
  stop(): void;
}

/**
 * Renews the lease every `intervalMs` (a third of the TTL by default), carrying progress out
 * and the cancel request back. Ticks never overlap. When renewals keep failing, the runner
 * gives up once a whole TTL has passed since the last success by its own monotonic clock:
 * past that point the reaper may already have ended the run.
 */
export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  // The claim just set the lease; measure from slightly before now to stay conservative.
  let lastRenewed = performance.now() - 50;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let cancelSignalled = false;
  // What the catalog last accepted, by either path: unchanged progress is not written again.
  let progressSent: string | null = null;

  const tick = async () => {
    if (stopped) return;
    const sentAt = performance.now();
    const progress = options.progress();
    try {
      const state = await options.renewLease({
        runId: options.runId,
        leaseId: options.leaseId,
        leaseTtlMs: options.leaseTtlMs,
        progress,
      });
      if (stopped) return;
      if (state && progress) progressSent = JSON.stringify(progress);
      if (!state) {
        stopped = true;
        options.onLeaseLost('the catalog refused the heartbeat: the run was reaped, finished or claimed by another attempt');
        return;
      }
      lastRenewed = sentAt;
      if (state.cancelRequested && !cancelSignalled) {
        cancelSignalled = true;
        options.onCancelRequested();
      }
    } catch (error) {
      options.log.warn({ err: error, runId: options.runId }, 'heartbeat failed; retrying');
      if (performance.now() - lastRenewed >= options.leaseTtlMs) {
        stopped = true;
        options.onLeaseLost(`no heartbeat reached the catalog for a whole lease (${options.leaseTtlMs} ms): ${(error as Error).message}`);
        return;
      }
    }
    if (!stopped) timer = setTimeout(tick, options.intervalMs);
  };
  timer = setTimeout(tick, options.intervalMs);

  // Progress alone, between renewals. Its failures are left to the renewals to judge.
  let progressTimer: NodeJS.Timeout | undefined;
  const report = options.reportProgress;
  const progressIntervalMs = options.progressIntervalMs ?? PROGRESS_REPORT_MS;
  const progressTick = async () => {
    if (stopped || !report) return;
    const tickStarted = performance.now();
    const progress = options.progress();
    const text = progress ? JSON.stringify(progress) : null;
    if (progress && text !== progressSent) {
      try {
        if (await report({ runId: options.runId, leaseId: options.leaseId, progress })) progressSent = text;
      } catch (error) {
        options.log.debug({ err: error, runId: options.runId }, 'progress report failed');
      }
    }
    // On a fixed beat: a slow write does not stretch the time between two.
    if (!stopped) progressTimer = setTimeout(progressTick, Math.max(0, progressIntervalMs - (performance.now() - tickStarted)));
  };
  if (report) progressTimer = setTimeout(progressTick, progressIntervalMs);

  return {
    leaseValidUntil: () => lastRenewed + options.leaseTtlMs,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (progressTimer) clearTimeout(progressTimer);
    },
  };
}
