import { finalizeReportedRun } from '../control/finalizeReportedRun.ts';
import type { ReportedProgress } from '../core/runProgress.ts';
import type { Queryable } from '../db/pool.ts';
import { appendRunnerEvent } from '../db/runEvents.ts';
import { releaseRun, renewLease, type FinalizeInput, type LeaseState } from '../db/runLeases.ts';
import { previousBackupBytes, reportRunProgress } from '../db/runProgress.ts';
import { getRun, recordVerification, type ClaimedRun, type RunRecord } from '../db/runRecords.ts';
import { getTargetWithSecret, type TargetWithSecret } from '../db/targets.ts';

/**
 * What a runner needs of its target: the database to dump, where to store it, and how; and
 * the plain size of its newest succeeded backup, against which a backup's progress is told.
 */
export type RunnerTarget = Pick<TargetWithSecret, 'id' | 'name' | 'storeUrl' | 'options' | 'databaseUrl'> & {
  previousBackupBytes?: number | null;
  /** A continuous target's slot: each backup is then a base taken at a new consistent point. */
  continuous?: { slot: string } | null;
};

/**
 * How a heartbeat thread reaches the same catalog on its own: a connection string next to the
 * catalog, or the API with the run's token for a remote runner.
 */
export type HeartbeatChannel =
  | { kind: 'sql'; connectionString: string }
  /** `progressRoute`: the server takes progress between heartbeats (servers older than live progress do not). */
  | { kind: 'http'; apiUrl: string; token: string; timeoutMs: number; progressRoute: boolean };

/**
 * Everything a runner asks of the catalog, as one port: the SQL implementation for workers
 * and `backstop run` next to the catalog, an HTTP one for remote runners (a CI job) that hold
 * only a runner token. Every write is fenced by the lease on the other side.
 */
export interface RunnerCatalog {
  target(run: ClaimedRun): Promise<RunnerTarget>;
  renewLease(input: { runId: string; leaseId: string; leaseTtlMs: number; progress?: Record<string, unknown> | null }): Promise<LeaseState | null>;
  /** Progress between heartbeats; false when the lease no longer holds the run. */
  reportProgress(input: { runId: string; leaseId: string; progress: ReportedProgress }): Promise<boolean>;
  finalize(input: FinalizeInput): Promise<RunRecord>;
  release(input: { runId: string; leaseId: string; reason: string }): Promise<boolean>;
  appendEvent(input: { runId: string; leaseId: string; kind: string; message: string; data?: Record<string, unknown> }): Promise<boolean>;
  /** For drills: the backup run being verified, and where its result goes. */
  getRun(runId: string): Promise<RunRecord>;
  recordVerification(subjectRunId: string, verification: Record<string, unknown>): Promise<void>;
  /** Set when a heartbeat thread can renew the lease on its own; otherwise heartbeats run on the runner's thread. */
  heartbeatChannel?: HeartbeatChannel;
}

export function sqlRunnerCatalog(db: Queryable): RunnerCatalog {
  const connectionString = connectionStringOf(db);
  return {
    heartbeatChannel: connectionString ? { kind: 'sql', connectionString } : undefined,
    target: async (run) => ({ ...(await getTargetWithSecret(db, run.targetId)), previousBackupBytes: await previousBackupBytes(db, run.targetId) }),
    renewLease: (input) => renewLease(db, input),
    reportProgress: (input) => reportRunProgress(db, input),
    finalize: (input) => finalizeReportedRun(db, input),
    release: (input) => releaseRun(db, input),
    appendEvent: (input) => appendRunnerEvent(db, input),
    getRun: (runId) => getRun(db, runId),
    recordVerification: (subjectRunId, verification) => recordVerification(db, subjectRunId, verification),
  };
}

/** The connection string behind a pg Pool, when `db` is one. */
function connectionStringOf(db: Queryable): string | undefined {
  const options = (db as { options?: { connectionString?: unknown } }).options;
  return typeof options?.connectionString === 'string' ? options.connectionString : undefined;
}
