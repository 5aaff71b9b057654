import pg from 'pg';
import { catalogTypes, type Pool } from '../../src/db/pool.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { claimNextRun, finalizeRun } from '../../src/db/runLeases.ts';
import type { ClaimedRun } from '../../src/db/runRecords.ts';

/**
 * Claim throughput: N loops, each on its own connection (a worker's claim path without the
 * backup in between), each cycle one `claimNextRun` and one `finalizeRun` with an artifact,
 * over one queued run per target (exclusive targets, as in production) in a catalog that
 * already holds the history of the catalog-size phase.
 */

export interface ClaimResult {
  loops: number;
  claims: number;
  elapsedMs: number;
  /** One claim + finalize, ms, sorted. */
  cycleMs: number[];
}

export async function measureClaims(pool: Pool, catalogUrl: string, options: { loops: number; seconds: number }): Promise<ClaimResult> {
  await pool.query(`delete from backstop.runs where status in ('queued', 'running')`);
  await pool.query(`insert into backstop.runs (target_id, trigger, deadline_at) select id, 'bench', now() + interval '1 hour' from backstop.targets`);
  await pool.query('analyze backstop.runs');
  const measured = await claimLoops(catalogUrl, {
    ...options,
    artifact: (run) => ({
      storeUrl: 's3://acme-backups/prod',
      prefix: `${run.targetName}/2026/11/${run.id}/attempt-1/`,
      manifest: { name: 'manifest.json', size: 2214, sha256: 'a'.repeat(64) },
      files: [{ name: 'dump.pgcustom.zst', size: 9_214_407, sha256: 'b'.repeat(64) }],
    }),
  });
  return { loops: options.loops, ...measured };
}

/**
 * `loops` claim loops, each on its own connection, claiming and finalizing the queued runs
 * (succeeded, with `artifact(run)`) until `seconds` are up or the queue is empty.
 */
export async function claimLoops(catalogUrl: string, options: { loops: number; seconds: number; artifact: (run: ClaimedRun) => Artifact | null }): Promise<Omit<ClaimResult, 'loops'>> {
  const clients = await Promise.all(
    Array.from({ length: options.loops }, async (_, index) => {
      const client = new pg.Client({ connectionString: catalogUrl, application_name: `bench-claimer-${index}`, types: catalogTypes });
      client.on('error', () => {});
      await client.connect();
      return client;
    }),
  );
  const cycleMs: number[] = [];
  let claims = 0;
  const begin = performance.now();
  const deadline = begin + options.seconds * 1000;
  try {
    await Promise.all(
      clients.map(async (client, index) => {
        while (performance.now() < deadline) {
          const cycleStart = performance.now();
          const run = await claimNextRun(client, { leaseTtlMs: 60_000, claimedBy: `bench:${index}:x` });
          if (!run) return;
          await finalizeRun(client, { runId: run.id, leaseId: run.leaseId, outcome: 'succeeded', artifact: options.artifact(run) });
          claims++;
          cycleMs.push(performance.now() - cycleStart);
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => {})));
  }
  return { claims, elapsedMs: performance.now() - begin, cycleMs: cycleMs.sort((a, b) => a - b) };
}
