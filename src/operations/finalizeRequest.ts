import { z } from 'zod';
import { parseRunProgress } from '../core/runProgress.ts';
import { runnerOutcomes } from '../core/runState.ts';
import type { FinalizeInput } from '../db/runLeases.ts';
import { detailsObject } from './detailsObject.ts';
import { leaseId } from './leaseId.ts';
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
    progress: detailsObject(50).nullable().optional().describe('How the work ended, as the progress route takes it.'),
  })
  .meta({ examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', outcome: 'failed', error: { code: 'DUMP_FAILED', message: 'pg_dump exited with 1' } }] });

export type FinalizeRequest = z.input<typeof finalizeRequest>;

/**
 * What a remote runner's finalize asks for, as the catalog takes it: a succeeded run keeps
 * only its artifact, any other outcome only its error. The report is then finalized by
 * control/finalizeReportedRun.ts, the same check the SQL runner's finalize goes through.
 *
 * The request was checked against `finalizeRequest` by the route's validation, which is
 * derived from it: unlike the other requests it is not parsed a second time here, because an
 * artifact may list 100,000 files and the runner's lease keeps running while the server
 * reads every one of them back.
 */
export function finalizeInputOf(runId: string, request: z.output<typeof finalizeRequest>): FinalizeInput {
  const { leaseId: lease, outcome, error, artifact, progress } = request;
  return {
    runId,
    leaseId: lease,
    outcome,
    error: outcome === 'succeeded' ? null : (error ?? null),
    artifact: outcome === 'succeeded' ? (artifact ?? null) : null,
    progress: parseRunProgress(progress),
  };
}
