import type { Queryable } from '../db/pool.ts';
import {
  appendRunnerEvent,
  finalizeRun,
  getRun,
  recordVerification,
  releaseRun,
  renewLease,
  type ClaimedRun,
  type FinalizeInput,
  type LeaseState,
  type RunRecord,
} from '../db/runs.ts';
import { getTargetWithSecret, type TargetWithSecret } from '../db/targets.ts';

/**
 * Everything a runner asks of the catalog, as one port: the SQL implementation for workers
 * and `backstop run` next to the catalog, an HTTP one for remote runners (a CI job) that hold
 * only a runner token. Every write is fenced by the lease on the other side.
 */
export interface RunnerCatalog {
  target(run: ClaimedRun): Promise<TargetWithSecret>;
  renewLease(input: { runId: string; leaseId: string; leaseTtlMs: number; progress?: Record<string, unknown> | null }): Promise<LeaseState | null>;
  finalize(input: FinalizeInput): Promise<RunRecord>;
  release(input: { runId: string; leaseId: string; reason: string }): Promise<boolean>;
  appendEvent(input: { runId: string; leaseId: string; kind: string; message: string; data?: Record<string, unknown> }): Promise<boolean>;
  /** For drills: the backup run being verified, and where its result goes. */
  getRun(runId: string): Promise<RunRecord>;
  recordVerification(subjectRunId: string, verification: Record<string, unknown>): Promise<void>;
}

export function sqlRunnerCatalog(db: Queryable): RunnerCatalog {
  return {
    target: (run) => getTargetWithSecret(db, run.targetId),
    renewLease: (input) => renewLease(db, input),
    finalize: (input) => finalizeRun(db, input),
    release: (input) => releaseRun(db, input),
    appendEvent: (input) => appendRunnerEvent(db, input),
    getRun: (runId) => getRun(db, runId),
    recordVerification: (subjectRunId, verification) => recordVerification(db, subjectRunId, verification),
  };
}
