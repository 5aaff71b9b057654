import { BackstopError } from '../core/errors.ts';
import { isTerminal } from '../core/runState.ts';
import type { Queryable } from '../db/pool.ts';
import { getRun } from '../db/runRecords.ts';
import { issueRunnerToken as storeRunnerToken } from '../db/tokens.ts';

/**
 * The runner token of a run that has not started: it lets one remote runner claim and work on
 * that run only. Issuing again replaces the previous token.
 */
export async function issueRunnerToken(db: Queryable, runId: string): Promise<{ runId: string; token: string }> {
  const run = await getRun(db, runId);
  if (isTerminal(run.status)) {
    throw new BackstopError('RUN_ALREADY_TERMINAL', `Run ${run.id} already finished as ${run.status}; trigger a new run instead.`);
  }
  if (run.status !== 'queued' && run.status !== 'dispatched') {
    throw new BackstopError('RUN_NOT_CLAIMABLE', `Run ${run.id} is ${run.status}: it is already being executed.`);
  }
  return { runId: run.id, token: await storeRunnerToken(db, run.id) };
}
