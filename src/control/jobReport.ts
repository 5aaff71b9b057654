import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import { endRunFromExecutor } from '../db/executorRuns.ts';
import { getRun, type RunRecord } from '../db/runRecords.ts';

export const jobStatuses = ['success', 'failure', 'cancelled'] as const;
export type JobStatus = (typeof jobStatuses)[number];

export function parseJobStatus(value: string): JobStatus {
  if (!(jobStatuses as readonly string[]).includes(value)) {
    throw new BackstopError('INVALID_INPUT', `--job-status must be success, failure or cancelled (GitHub: \${{ job.status }}), got "${value}".`);
  }
  return value as JobStatus;
}

/**
 * A CI job's last, `if: always()` step. When the run step finished the run, this changes
 * nothing. When it could not (it crashed, was killed, timed out, or never started), the job is
 * over, so no runner can still hold the run: it ends now with the job's status instead of
 * waiting for the lease to expire. The same for `backstop report` over SQL and over HTTP.
 */
export async function reportJobStatus(db: Queryable, runId: string, jobStatus: JobStatus): Promise<{ ended: boolean; run: RunRecord }> {
  const before = await getRun(db, runId);
  const ended = await endRunFromExecutor(db, {
    runId,
    status: jobStatus === 'cancelled' ? 'cancelled' : 'failed',
    error: {
      code: 'EXECUTOR_ENDED',
      message: `The CI job ended (job status: ${jobStatus}) while the run was ${before.status}: the run step did not record an outcome.`,
    },
  });
  return { ended: ended !== null, run: ended ?? (await getRun(db, runId)) };
}
