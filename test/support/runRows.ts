import type { Artifact } from '../../src/core/artifact.ts';
import type { RunnerOutcome } from '../../src/core/runState.ts';
import type { Pool } from '../../src/db/pool.ts';
import { claimRunById, finalizeRun } from '../../src/db/runLeases.ts';
import { createRun } from '../../src/db/runRecords.ts';

/** A failed run of the same target as `runId`, as a runner records one (DUMP_FAILED); its id. */
export async function insertFailedRun(pool: Pool, runId: string): Promise<string> {
  const { rows } = await pool.query<{ id: string }>(
    `insert into backstop.runs (target_id, status, attempt, deadline_at, started_at, finished_at, error_code, error_message)
     select target_id, 'failed', 1, now() + interval '1 hour', now() - interval '2 seconds', now(), 'DUMP_FAILED', 'pg_dump stopped with an error.'
       from backstop.runs where id = $1 returning id`,
    [runId],
  );
  return rows[0]!.id;
}

/**
 * A run of `targetId` through the real create, claim and finalize path, ending with `outcome`;
 * the run, and how long its finalize took (what a notification must never delay).
 */
export async function finishRun(pool: Pool, targetId: string, outcome: RunnerOutcome, options: { error?: { code: string; message: string } | null; artifact?: Artifact | null } = {}) {
  const run = await createRun(pool, { targetId, trigger: 'test', runDeadlineMs: 3_600_000 });
  const claimed = await claimRunById(pool, run.id, { leaseTtlMs: 60_000, claimedBy: 'test-runner' });
  const started = performance.now();
  const finished = await finalizeRun(pool, { runId: run.id, leaseId: claimed.leaseId, outcome, error: options.error ?? null, artifact: options.artifact ?? null });
  return { run: finished, finalizeMs: performance.now() - started };
}
