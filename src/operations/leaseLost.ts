import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import { getRun } from '../db/runRecords.ts';

/** Zero rows updated under a lease: either the run does not exist (RUN_NOT_FOUND) or this lease no longer holds it (LEASE_LOST). */
export async function leaseLost(db: Queryable, runId: string): Promise<never> {
  const run = await getRun(db, runId);
  throw new BackstopError(
    'LEASE_LOST',
    `Run ${runId} is no longer held by this lease (it is ${run.status}, attempt ${run.attempt}). Stop working on it: its outcome is decided elsewhere.`,
  );
}
