import type { Logger } from 'pino';
import type { RunnerCatalog } from './runnerCatalog.ts';

export interface HeartbeatOptions {
  renewLease: RunnerCatalog['renewLease'];
  runId: string;
  leaseId: string;
  leaseTtlMs: number;
  intervalMs: number;
  log: Logger;
  progress: () => Record<string, unknown> | null;
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

  const tick = async () => {
    if (stopped) return;
    const sentAt = performance.now();
    try {
      const state = await options.renewLease({
        runId: options.runId,
        leaseId: options.leaseId,
        leaseTtlMs: options.leaseTtlMs,
        progress: options.progress(),
      });
      if (stopped) return;
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

  return {
    leaseValidUntil: () => lastRenewed + options.leaseTtlMs,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
