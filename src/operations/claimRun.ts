import type { Config } from '../core/config.ts';
import type { Queryable } from '../db/pool.ts';
import { claimRunById } from '../db/runLeases.ts';
import type { ClaimedRun } from '../db/runRecords.ts';

/**
 * Claims one queued or dispatched run for this process to execute in the foreground (`backstop
 * verify`, `demo`): a new attempt and lease, or a refusal saying why the run cannot start.
 */
export async function claimRun(db: Queryable, config: Pick<Config, 'leaseTtlMs'>, runId: string, claimedBy: string): Promise<ClaimedRun> {
  return claimRunById(db, runId, { leaseTtlMs: config.leaseTtlMs, claimedBy });
}
