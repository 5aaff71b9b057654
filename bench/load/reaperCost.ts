import pg from 'pg';
import type { Pool, Queryable } from '../../src/db/pool.ts';
import { reapRuns } from '../../src/db/runLeases.ts';

/**
 * Reaper cost with `running` runs in flight (one per target): one pass when none has
 * expired (what every reaper pays every interval), and one when all have; with the plan of
 * each, to show what the pass reads.
 */

export interface ReaperResult {
  running: number;
  /** Passes with nothing overdue, ms, sorted. */
  idlePassMs: number[];
  /** A pass that reaped one run (the usual case when something is overdue), ms. */
  onePassMs: number;
  /** The one pass that reaped every run, ms. */
  fullPassMs: number;
  reaped: number;
  idlePlan: string;
  onePlan: string;
  fullPlan: string;
}

export async function measureReaper(pool: Pool, catalogUrl: string, options: { passes: number }): Promise<ReaperResult> {
  await pool.query(`delete from backstop.runs where status in ('queued', 'running', 'cancelling', 'dispatched')`);
  const { rowCount } = await pool.query(
    `insert into backstop.runs (target_id, status, trigger, attempt, lease_id, lease_expires_at, heartbeat_at, claimed_by, deadline_at, started_at)
     select id, 'running', 'bench', 1, gen_random_uuid(), now() + interval '1 hour', now(), 'bench:1:x', now() + interval '6 hours', now()
     from backstop.targets`,
  );
  await pool.query('analyze backstop.runs');

  // The reaper's own statement, captured as it runs, to explain it exactly.
  let statement: { text: string; values: unknown[] } | undefined;
  const capturing: Queryable = {
    query: (text: string, values?: unknown[]) => {
      statement = { text, values: values ?? [] };
      return pool.query(text, values);
    },
  } as Queryable;
  await reapRuns(capturing);
  const idlePassMs: number[] = [];
  for (let pass = 0; pass < options.passes; pass++) {
    const started = performance.now();
    await reapRuns(pool);
    idlePassMs.push(performance.now() - started);
  }
  const explain = async (): Promise<string> => {
    // EXPLAIN ANALYZE executes the UPDATE: inside a transaction that is rolled back.
    const client = new pg.Client({ connectionString: catalogUrl });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.query('begin');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers, costs off) ${statement!.text}`, statement!.values);
      return rows.map((row) => row['QUERY PLAN']).join('\n');
    } finally {
      await client.query('rollback').catch(() => {});
      await client.end().catch(() => {});
    }
  };
  const idlePlan = await explain();

  const expireOne = () =>
    pool.query(`update backstop.runs set lease_expires_at = now() - interval '1 second' where id = (select id from backstop.runs where status = 'running' limit 1)`);
  await expireOne();
  const onePlan = await explain();
  const oneStarted = performance.now();
  await reapRuns(pool);
  const onePassMs = performance.now() - oneStarted;

  await pool.query(`update backstop.runs set lease_expires_at = now() - interval '1 second' where status = 'running'`);
  const fullPlan = await explain();
  const started = performance.now();
  const reaped = await reapRuns(pool);
  const fullPassMs = performance.now() - started;
  return { running: rowCount ?? 0, idlePassMs: idlePassMs.sort((a, b) => a - b), onePassMs, fullPassMs, reaped: reaped.length, idlePlan, onePlan, fullPlan };
}
