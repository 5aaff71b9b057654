import { z } from 'zod';
import { jobStatuses } from '../core/jobStatus.ts';
import type { Queryable } from '../db/pool.ts';
import { endRunFromExecutor } from '../db/executorRuns.ts';
import { getRun, type RunRecord } from '../db/runRecords.ts';
import { parseInput } from '../core/inputProblems.ts';
import { resolveRunId } from './resolveRunId.ts';

export const jobReportRequest = z
  .strictObject({
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, shown to the user as written
    jobStatus: z.enum(jobStatuses, { error: 'must be success, failure or cancelled (GitHub: ${{ job.status }})' }).describe("The CI job's status (GitHub: `${{ job.status }}`)."),
  })
  .meta({ examples: [{ jobStatus: 'failure' }] });

export type JobReportRequest = z.input<typeof jobReportRequest>;

/**
 * A CI job's last, `if: always()` step. When the run step finished the run, this changes
 * nothing (`ended: false`). When it could not (it crashed, was killed, timed out, or never
 * started), the job is over, so no runner can still hold the run: it ends now with the job's
 * status (`cancelled` for a cancelled job, `failed` otherwise, with EXECUTOR_ENDED) instead of
 * waiting for the lease to expire. The same for `backstop report` over SQL and over HTTP.
 */
export async function reportJobStatus(db: Queryable, run: string, request: JobReportRequest): Promise<{ ended: boolean; run: RunRecord }> {
  const { jobStatus } = parseInput(jobReportRequest, request);
  const runId = await resolveRunId(db, run);
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
