import { BackstopError, isBackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import { finalizeRun, getRunForLease, type FinalizeInput } from '../db/runLeases.ts';
import type { RunRecord } from '../db/runRecords.ts';
import { getTargetWithSecret } from '../db/targets.ts';
import { checkReportedArtifact } from './checkReportedArtifact.ts';

/**
 * Ends a run as its runner reports it, whichever runner that is (the HTTP finalize route and
 * the SQL runner catalog both come here): a backup reported `succeeded` is first checked
 * against the store by `checkReportedArtifact`. A refused report ends the attempt `failed`
 * with ARTIFACT_REJECTED and the reason (like any failed attempt, and with no artifact, so
 * nothing acts on the location it named), and the runner gets the refusal.
 */
export async function finalizeReportedRun(db: Queryable, input: FinalizeInput): Promise<RunRecord> {
  if (input.outcome !== 'succeeded') return finalizeRun(db, input);
  const { run, held, sameLease } = await getRunForLease(db, input.runId, input.leaseId);
  if (!held) {
    // The same report again after a refusal: the refusal again, rather than a lost lease.
    if (sameLease && run.status === 'failed' && run.error?.code === 'ARTIFACT_REJECTED') throw new BackstopError('ARTIFACT_REJECTED', run.error.message);
    // Otherwise finalizeRun decides: a repeat of the finalize that won, or LEASE_LOST.
    return finalizeRun(db, input);
  }
  // A drill reports a result, never an artifact.
  if (run.kind !== 'backup') return finalizeRun(db, { ...input, artifact: null });
  if (!input.artifact) {
    throw new BackstopError('INVALID_INPUT', 'A backup can finalize as succeeded only with its artifact (files, sizes and SHA-256, manifest last).');
  }
  let manifest;
  try {
    manifest = await checkReportedArtifact(run, await getTargetWithSecret(db, run.targetId), input.artifact);
  } catch (error) {
    if (!isBackstopError(error, 'ARTIFACT_REJECTED')) throw error;
    try {
      await finalizeRun(db, { runId: input.runId, leaseId: input.leaseId, outcome: 'failed', error: { code: error.code, message: error.message }, artifact: null });
    } catch (finalizeError) {
      // The lease ran out meanwhile: the reaper ends the attempt. The runner still hears why.
      if (!isBackstopError(finalizeError, 'LEASE_LOST')) throw finalizeError;
    }
    throw error;
  }
  // A continuous target's base: where its stream takes over, from the manifest as read back.
  return finalizeRun(db, input, manifest.continuous ? { lsn: manifest.continuous.consistentLsn, slot: manifest.continuous.slot } : undefined);
}
