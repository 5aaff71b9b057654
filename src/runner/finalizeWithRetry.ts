import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { BackstopError, isBackstopError, type ErrorCode } from '../core/errors.ts';
import type { FinalizeInput } from '../db/runLeases.ts';
import type { RunRecord } from '../db/runRecords.ts';

// Answers that another attempt cannot change: the lease is gone, or (over HTTP) the API
// refuses this token, this run or this request. Anything else (the catalog or the API
// unreachable, a 5xx) may pass, and is retried. ARTIFACT_REJECTED has already ended the attempt.
const definitive = new Set<ErrorCode>(['LEASE_LOST', 'UNAUTHORIZED', 'FORBIDDEN', 'RUN_NOT_FOUND', 'NOT_FOUND', 'INVALID_INPUT', 'ARTIFACT_REJECTED']);

/**
 * Finalize, retried with capped exponential backoff until the lease would have expired by
 * the runner's own clock. LEASE_LOST and other definitive refusals are not retried. Every
 * failure is logged.
 */
export async function finalizeWithRetry(
  finalize: (input: FinalizeInput) => Promise<RunRecord>,
  input: FinalizeInput,
  options: { until: () => number; log: Logger },
): Promise<RunRecord> {
  let delay = 100;
  let attempt = 0;
  for (;;) {
    attempt++;
    try {
      return await finalize(input);
    } catch (error) {
      if (isBackstopError(error) && definitive.has(error.code)) throw error;
      const remaining = options.until() - performance.now();
      options.log.error({ err: error, runId: input.runId, outcome: input.outcome, attempt, remainingMs: Math.round(remaining) }, 'finalize failed');
      if (remaining <= 0) {
        throw new BackstopError(
          'CATALOG_UNAVAILABLE',
          `Could not record the outcome "${input.outcome}" of run ${input.runId} after ${attempt} attempts: ${(error as Error).message}. The reaper will mark the run timed_out.`,
          { cause: error },
        );
      }
      await sleep(Math.min(delay, Math.max(remaining, 10)));
      delay = Math.min(delay * 2, 2000);
    }
  }
}
