import { z } from 'zod';
import { jobStatuses, reportJobStatus } from '../control/jobReport.ts';
import type { Queryable } from '../db/pool.ts';
import type { RunRecord } from '../db/runs.ts';
import { parseInput } from './parseInput.ts';
import { resolveRunId } from './resolveRunId.ts';

export const jobReportRequest = z
  .strictObject({
    jobStatus: z
      .enum(jobStatuses, { error: 'The job status must be success, failure or cancelled (GitHub: ${{ job.status }})' })
      .describe("The CI job's status (GitHub: `${{ job.status }}`)."),
  })
  .meta({ examples: [{ jobStatus: 'failure' }] });

export type JobReportRequest = z.input<typeof jobReportRequest>;

/**
 * A CI job's last, `if: always()` step (`backstop report`). A finished run is left as it is
 * (`ended: false`); otherwise the job is over, so no runner can still hold the run: it ends
 * at once, `cancelled` for a cancelled job and `failed` otherwise, with EXECUTOR_ENDED.
 */
export async function reportJobOutcome(db: Queryable, run: string, request: JobReportRequest): Promise<{ ended: boolean; run: RunRecord }> {
  const { jobStatus } = parseInput(jobReportRequest, request);
  return reportJobStatus(db, await resolveRunId(db, run), jobStatus);
}
