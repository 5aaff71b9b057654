/**
 * `npm run bench:load`: the control plane at scale, with its own embedded PostgreSQL.
 *
 *   1. Scheduler lag: 10,000 targets scheduled `* * * * *`; at each minute boundary, the time
 *      from the boundary until each of the 10,000 runs exists (committed), max and p99.
 *   2. Catalog size per million runs: 200,000 finished runs with their events, measured.
 *   3. Claim throughput with 1, 2 and 4 claim loops (claim + finalize, no backup between).
 *   4. Reaper cost with 10,000 running runs: a pass with none expired, one with all expired,
 *      and the plan of each.
 *
 * Writes bench/results/load-<date>.md and bench/results/latest-load.md.
 *
 *   npm run bench:load -- [--targets 10000] [--boundaries 2] [--history 200000] [--claim-seconds 10] [--loops 1,2,4]
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createDatabaseIfMissing } from '../src/db/createDatabaseIfMissing.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { measureCatalogSize, type CatalogSizeResult } from './load/catalogSize.ts';
import { measureClaims, type ClaimResult } from './load/claims.ts';
import { measureReaper, type ReaperResult } from './load/reaperCost.ts';
import { measureSchedulerLag, type SchedulerLagResult } from './load/schedulerLag.ts';
import { describeMachine, type MachineDescription } from './machine.ts';
import { writeResults } from './writeResults.ts';

const usage = 'npm run bench:load -- [--targets 10000] [--boundaries 2] [--history 200000] [--claim-seconds 10] [--loops 1,2,4]\n';
const { values: args } = parseArgs({
  options: {
    targets: { type: 'string', default: '10000' },
    boundaries: { type: 'string', default: '2' },
    history: { type: 'string', default: '200000' },
    'claim-seconds': { type: 'string', default: '10' },
    loops: { type: 'string', default: '1,2,4' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(usage);
  process.exit(0);
}
function whole(name: string, value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) {
    process.stderr.write(`--${name} must be a whole number above 0, got "${value}".\n${usage}`);
    process.exit(2);
  }
  return parsed;
}
const targets = whole('targets', args.targets);
const boundaries = whole('boundaries', args.boundaries);
const history = whole('history', args.history);
const claimSeconds = whole('claim-seconds', args['claim-seconds']);
const loopCounts = args.loops.split(',').map((count) => whole('loops', count));

const began = performance.now();
const log = (message: string) => process.stderr.write(`[${((performance.now() - began) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);

const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
const ms = (value: number) => (Number.isNaN(value) ? '—' : value < 10 ? value.toFixed(2) : value.toFixed(0));
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

interface LoadResults {
  machine: MachineDescription;
  serverVersion: string;
  loadBefore: number;
  loadAfter: number;
  lag: SchedulerLagResult;
  size: CatalogSizeResult;
  claims: ClaimResult[];
  reaper: ReaperResult;
}

function render(results: LoadResults): string {
  const { machine, lag, size, claims, reaper } = results;
  const lastVisible = lag.boundaries.map((boundary) => boundary.visibleMs.at(-1) ?? Number.NaN);
  const worst = Math.max(...lastVisible);
  const perMillion = (bytes: number) => (bytes / size.runs) * 1e6;
  const totalPerMillion = perMillion(size.grown.reduce((sum, table) => sum + table.totalBytes, 0));
  const lines = [
    '# Load benchmark',
    '',
    `\`npm run bench:load -- --targets ${targets} --boundaries ${boundaries} --history ${history} --claim-seconds ${claimSeconds} --loops ${loopCounts.join(',')}\` — ${machine.date.slice(0, 10)}, took ${((performance.now() - began) / 60_000).toFixed(1)} min.`,
    '',
    '## Machine',
    '',
    `- CPU: ${machine.cpu}, ${machine.cores} cores; memory ${machine.memoryGB} GB; ${machine.kernel}`,
    `- Node ${machine.node}; PostgreSQL ${results.serverVersion} (embedded, same machine, default settings)`,
    `- 1-minute load average: ${results.loadBefore.toFixed(1)} before, ${results.loadAfter.toFixed(1)} after (other work on this machine shares its cores)`,
    '',
    '## Targets',
    '',
    '| target | measured | met |',
    '|---|---|---|',
    `| scheduler lag < 2 s at ${targets.toLocaleString('en-US')} targets (every run of a minute boundary visible) | ${(worst / 1000).toFixed(2)} s (worst boundary) | ${worst < 2000 ? 'yes' : '**no**'} |`,
    '',
    '## Scheduler lag at the minute boundary',
    '',
    `${targets.toLocaleString('en-US')} targets, all \`* * * * *\` (UTC): at each boundary ${targets.toLocaleString('en-US')} runs are due at once — the worst case. ` +
      'One scheduler (`startScheduler`, as in `backstop server`) on its own pool; a separate connection LISTENs to the `pg_notify` each run insert sends at commit, ' +
      'so "visible" is when the run row exists for everyone, per run. "created_at" is the inserting statement\'s database time.',
    '',
    '| boundary | runs | visible p50 (ms) | visible p99 (ms) | visible max (ms) | created_at max (ms) |',
    '|---|---:|---:|---:|---:|---:|',
    ...lag.boundaries.map(
      (boundary) =>
        `| ${boundary.slot} | ${boundary.runs} | ${ms(percentile(boundary.visibleMs, 50))} | ${ms(percentile(boundary.visibleMs, 99))} | ${ms(boundary.visibleMs.at(-1) ?? Number.NaN)} | ${ms(boundary.createdMs.at(-1) ?? Number.NaN)} |`,
    ),
    '',
    `A tick with nothing due (what the scheduler costs every second with ${targets.toLocaleString('en-US')} targets): p50 ${ms(percentile(lag.idleTickMs, 50))} ms, max ${ms(lag.idleTickMs.at(-1) ?? Number.NaN)} ms.`,
    '',
    '## Catalog size per million runs',
    '',
    `${size.runs.toLocaleString('en-US')} finished runs inserted (${size.events.toLocaleString('en-US')} events: created, claimed, dump_started, dump_stored, finished; one run in ten failed, with an error and no artifact), ` +
      `spread over the targets, with realistic artifacts, progress and messages; measured after VACUUM ANALYZE, growth only; inserted in ${size.insertSeconds.toFixed(0)} s.`,
    '',
    '| table | heap (MB) | indexes (MB) | TOAST (MB) | total (MB) | per million runs (GB) |',
    '|---|---:|---:|---:|---:|---:|',
    ...size.grown.map(
      (table) =>
        `| ${table.table} | ${mb(table.heapBytes)} | ${mb(table.indexBytes)} | ${mb(table.toastBytes)} | ${mb(table.totalBytes)} | ${(perMillion(table.totalBytes) / 1e9).toFixed(2)} |`,
    ),
    `| **both** | | | | ${mb(size.grown.reduce((sum, table) => sum + table.totalBytes, 0))} | **${(totalPerMillion / 1e9).toFixed(2)}** |`,
    '',
    `About ${(totalPerMillion / 1e6 / 1000).toFixed(2)} KB per run. Retention (\`keep-last\`, GFS) deletes pruned runs with their events.`,
    '',
    '## Claim throughput',
    '',
    `\`claimNextRun\` + \`finalizeRun\` (with an artifact), N loops each on its own connection, no backup in between: the claim path of a worker, not its work. ` +
      `One queued run per target (${targets.toLocaleString('en-US')} exclusive targets), with the history above in the tables; ${claimSeconds} s per measurement.`,
    '',
    '| loops | claims | claims/s | cycle p50 (ms) | cycle p99 (ms) |',
    '|---:|---:|---:|---:|---:|',
    ...claims.map(
      (claim) =>
        `| ${claim.loops} | ${claim.claims} | ${((claim.claims * 1000) / claim.elapsedMs).toFixed(0)} | ${ms(percentile(claim.cycleMs, 50))} | ${ms(percentile(claim.cycleMs, 99))} |`,
    ),
    '',
    '## Reaper cost',
    '',
    `${reaper.running.toLocaleString('en-US')} running runs (one per target) among the history above. One pass is \`reapRuns\`, the single statement every reaper runs each interval.`,
    '',
    '| pass | time (ms) |',
    '|---|---:|',
    `| none expired (p50 of ${reaper.idlePassMs.length}) | ${ms(percentile(reaper.idlePassMs, 50))} |`,
    `| none expired (max) | ${ms(reaper.idlePassMs.at(-1) ?? Number.NaN)} |`,
    `| one expired, reaped with its event | ${ms(reaper.onePassMs)} |`,
    `| all ${reaper.reaped.toLocaleString('en-US')} expired, reaped with their events | ${ms(reaper.fullPassMs)} |`,
    '',
    'Plan, none expired (`EXPLAIN (ANALYZE, BUFFERS)` in a rolled-back transaction):',
    '',
    '```',
    reaper.idlePlan,
    '```',
    '',
    'Plan, one expired:',
    '',
    '```',
    reaper.onePlan,
    '```',
    '',
    'Plan, all expired:',
    '',
    '```',
    reaper.fullPlan,
    '```',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const root = await temporaryHome('backstop-bench-load-');
  const pgHome = path.join(root, 'home');
  try {
    log('starting PostgreSQL');
    const postgres = await ensureEmbeddedPostgres(pgHome);
    await createDatabaseIfMissing(postgres.url(), 'backstop');
    const catalogUrl = postgres.url('backstop');
    const pool = createPool(catalogUrl, { max: 10 });
    try {
      await migrate(pool);
      const serverVersion = (await pool.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
      const loadBefore = os.loadavg()[0]!;
      log(`creating ${targets} targets scheduled every minute`);
      await pool.query(
        `insert into backstop.targets (name, database_url, store_url, schedule)
         select 'load-' || lpad(i::text, 6, '0'), 'postgres://backup:secret@db-' || i || '.internal:5432/app', 's3://acme-backups/prod',
                '{"cron": "* * * * *", "timezone": "UTC"}'::jsonb
         from generate_series(1, $1::int) i`,
        [targets],
      );
      const lag = await measureSchedulerLag(pool, catalogUrl, { targets, boundaries, log });
      await pool.query(`update backstop.targets set schedule = null`);
      log(`catalog size: inserting ${history} finished runs with their events`);
      const size = await measureCatalogSize(pool, { runs: history, log });
      const claims: ClaimResult[] = [];
      for (const loops of loopCounts) {
        log(`claims: ${loops} loop(s) for ${claimSeconds} s`);
        claims.push(await measureClaims(pool, catalogUrl, { loops, seconds: claimSeconds }));
        log(`  ${claims.at(-1)!.claims} claims`);
      }
      log(`reaper: ${targets} running runs`);
      const reaper = await measureReaper(pool, catalogUrl, { passes: 20 });
      const machine = await describeMachine();
      const report = render({ machine, serverVersion, loadBefore, loadAfter: os.loadavg()[0]!, lag, size, claims, reaper });
      process.stdout.write(report);
      const written = await writeResults('load', report, machine.date);
      log(`wrote ${written.join(' and ')}`);
    } finally {
      await pool.end();
    }
  } finally {
    await stopEmbeddedPostgres(pgHome, { mode: 'immediate' }).catch(() => {});
    await fs.rm(root, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (error) {
  log(`failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
}
