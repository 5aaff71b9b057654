import { z } from 'zod';
import { finalizeReportedRun } from '../control/finalizeReportedRun.ts';
import { runnerOutcomes } from '../core/runState.ts';
import type { Queryable } from '../db/pool.ts';
import type { RunRecord } from '../db/runs.ts';
import { leaseId } from './leaseId.ts';
import { parseInput } from './parseInput.ts';
import { reportedArtifact } from './reportedArtifact.ts';

export const finalizeRequest = z
  .strictObject({
    leaseId,
    outcome: z.enum(runnerOutcomes),
    error: z
      .strictObject({ code: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/), message: z.string().max(4000) })
      .nullable()
      .optional(),
    artifact: reportedArtifact.nullable().optional().describe('Required to finalize a backup as succeeded.'),
  })
  .meta({ examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', outcome: 'failed', error: { code: 'DUMP_FAILED', message: 'pg_dump exited with 1' } }] });

export type FinalizeRequest = z.input<typeof finalizeRequest>;

/**
 * A remote runner ends its run. A succeeded backup keeps only its artifact, which is read back
 * from the target's store and checked first (finalizeReportedRun); any other outcome keeps
 * only its error. Repeating the same finalize with the same lease succeeds.
 */
export async function finalizeReport(db: Queryable, runId: string, request: FinalizeRequest): Promise<RunRecord> {
  const { leaseId: lease, outcome, error, artifact } = parseInput(finalizeRequest, request);
  return finalizeReportedRun(db, {
    runId,
    leaseId: lease,
    outcome,
    error: outcome === 'succeeded' ? null : (error ?? null),
    artifact: outcome === 'succeeded' ? (artifact ?? null) : null,
  });
}
