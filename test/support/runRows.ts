import type { Pool } from '../../src/db/pool.ts';

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
