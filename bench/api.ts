/**
 * `npm run bench:api`: the HTTP API and the claim path, with its own embedded PostgreSQL.
 *
 *   1. Run-status reads: GET /api/v1/runs/:id at fixed rates for a fixed time each, from a
 *      separate process on loopback (bench/apiLoad.ts), p50 / p90 / p99 / max latency.
 *   2. Claims per second: N concurrent loops (1, 2, 4), each on its own connection, doing
 *      claimNextRun + finalizeRun on trivially small queued runs until the time is up.
 *
 * Writes bench/results/api-<date>.md and bench/results/latest-api.md.
 *
 *   npm run bench:api -- [--rate 100,200,300] [--seconds 10] [--claim-seconds 5] [--workers 1,2,4]
 */
import { fork } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { createDatabaseIfMissing } from '../src/db/createDatabaseIfMissing.ts';
import { loadConfig } from '../src/core/config.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { createTarget } from '../src/db/targets.ts';
import { createApiToken } from '../src/db/tokens.ts';
import { startServer, type RunningServer } from '../src/server/startServer.ts';
import { claimLoops } from './load/claims.ts';
import type { LoadJob, LoadResult } from './apiLoad.ts';
import { describeMachine } from './machine.ts';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '100,200,300' },
    seconds: { type: 'string', default: '10' },
    'claim-seconds': { type: 'string', default: '5' },
    workers: { type: 'string', default: '1,2,4' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    'npm run bench:api -- [--rate 100,200,300] [--seconds 10] [--claim-seconds 5] [--workers 1,2,4]\n' +
      '  --rate           run-status reads per second (open loop), one measurement per rate\n' +
      '  --seconds        how long the reads last at each rate\n' +
      '  --claim-seconds  how long each claim measurement lasts\n' +
      '  --workers        concurrent claim loops to compare\n',
  );
  process.exit(0);
}
const positive = (name: string, text: string): number => {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`--${name} must be a positive number, got "${text}"\n`);
    process.exit(2);
  }
  return value;
};
const rates = args.rate.split(',').map((rate) => positive('rate', rate));
const seconds = positive('seconds', args.seconds);
const claimSeconds = positive('claim-seconds', args['claim-seconds']);
const workerCounts = args.workers.split(',').map((count) => Math.round(positive('workers', count)));
// Bounds: the read phase makes at most rate × seconds requests, the claim phase at most this many runs per measurement.
const MAX_REQUESTS = 100_000;
const CLAIM_RUNS = 20_000;
if (rates.some((rate) => rate * seconds > MAX_REQUESTS)) {
  process.stderr.write(`each --rate × --seconds must stay under ${MAX_REQUESTS} requests\n`);
  process.exit(2);
}

const started = performance.now();
const log = (message: string): void => {
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
};

const cleanups: Array<{ name: string; run: () => Promise<unknown> }> = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup.run();
      } catch (error) {
        log(`cleanup "${cleanup.name}" failed: ${(error as Error).message}`);
      }
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

const percentile = (sorted: number[], p: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
const ms = (value: number) => (Number.isNaN(value) ? '—' : value < 10 ? value.toFixed(2) : value.toFixed(1));

/** Seeds `count` finished runs with a few events each: what run-status reads look up. */
async function seedFinishedRuns(pool: Pool, targetId: string, count: number): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `insert into backstop.runs (target_id, trigger, status, attempt, deadline_at, started_at, finished_at, artifact)
     select $1, 'bench', 'succeeded', 1, now() + interval '1 hour', now() - interval '1 minute', now(),
       jsonb_build_object('storeUrl', 'file:///bench', 'prefix', 'bench/' || i || '/',
         'manifest', jsonb_build_object('name', 'manifest.json', 'size', 1000, 'sha256', repeat('a', 64)),
         'files', jsonb_build_array(jsonb_build_object('name', 'dump.pgcustom.zst', 'size', 123456, 'sha256', repeat('b', 64))))
     from generate_series(1, $2) i returning id`,
    [targetId, count],
  );
  await pool.query(
    `insert into backstop.run_events (run_id, attempt, kind, status, message)
     select r.id, 1, k.kind, 'running', k.kind from backstop.runs r cross join (values ('created'), ('claimed'), ('dump_stored'), ('finished')) as k(kind)
     where r.target_id = $1`,
    [targetId],
  );
  await pool.query('analyze backstop.runs; analyze backstop.run_events');
  return rows.map((row) => row.id);
}

async function measureReads(server: RunningServer, token: string, runIds: string[], rate: number): Promise<LoadResult> {
  const child = fork(fileURLToPath(new URL('./apiLoad.ts', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanups.push({ name: 'load generator', run: async () => void (child.exitCode === null && child.kill('SIGKILL')) });
  const job: LoadJob = { baseUrl: server.url, token, paths: runIds.map((id) => `/api/v1/runs/${id}`), rate, seconds, maxInFlight: 256 };
  const result = await new Promise<LoadResult>((resolve, reject) => {
    child.once('message', (message: { type: 'result'; result: LoadResult } | { type: 'error'; message: string }) =>
      message.type === 'result' ? resolve(message.result) : reject(new Error(message.message)),
    );
    child.once('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
    child.send(job);
  });
  await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
  return result;
}

interface ClaimResult {
  workers: number;
  claims: number;
  elapsedMs: number;
  cycleMs: number[];
}

/** `workers` loops, each with its own connection, claiming and finalizing until time is up or the queue is empty. */
async function measureClaims(url: string, pool: Pool, targetId: string, workers: number): Promise<ClaimResult> {
  await pool.query(`delete from backstop.runs where target_id = $1`, [targetId]);
  await pool.query(`insert into backstop.runs (target_id, trigger, exclusive, deadline_at) select $1, 'bench', false, now() + interval '1 hour' from generate_series(1, $2)`, [
    targetId,
    CLAIM_RUNS,
  ]);
  await pool.query('analyze backstop.runs');
  const measured = await claimLoops(url, { loops: workers, seconds: claimSeconds, artifact: () => null });
  return { workers, ...measured };
}

async function main(): Promise<void> {
  const root = await temporaryHome('backstop-bench-api-');
  cleanups.push({ name: 'temporary folder', run: () => fs.rm(root, { recursive: true, force: true }) });
  const pgHome = path.join(root, 'home');
  log('starting PostgreSQL');
  cleanups.push({ name: 'PostgreSQL', run: () => stopEmbeddedPostgres(pgHome) });
  const postgres = await ensureEmbeddedPostgres(pgHome);
  await createDatabaseIfMissing(postgres.url(), 'backstop');
  const catalogUrl = postgres.url('backstop');
  const pool = createPool(catalogUrl, { max: 10 });
  cleanups.push({ name: 'pool', run: () => pool.end() });
  await migrate(pool);
  const serverVersion = (await pool.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;

  log('seeding 2,000 finished runs');
  const readTarget = await createTarget(pool, { name: 'reads', databaseUrl: 'postgres://u:p@127.0.0.1:1/none', storeUrl: 'file:///bench' });
  const runIds = await seedFinishedRuns(pool, readTarget.id, 2_000);
  const token = (await createApiToken(pool, { name: 'bench', role: 'viewer' })).token;

  const config = loadConfig({ BACKSTOP_DATABASE_URL: catalogUrl, BACKSTOP_LOG_LEVEL: 'silent' }, process.cwd());
  const server = await startServer({ pool, config, log: pino({ level: 'silent' }) }, { host: '127.0.0.1', port: 0, worker: null, processMetrics: false });
  cleanups.push({ name: 'server', run: () => server.close() });

  const loadBefore = os.loadavg()[0]!;
  const readResults: Array<{ rate: number; result: LoadResult }> = [];
  for (const rate of rates) {
    log(`run-status reads: ${rate}/s for ${seconds} s from a separate process`);
    const result = await measureReads(server, token, runIds.slice(0, 500), rate);
    readResults.push({ rate, result });
    log(`  ${result.ok} ok, ${result.errors} errors, ${result.dropped} dropped; p50 ${ms(percentile(result.latenciesMs, 50))} ms, p99 ${ms(percentile(result.latenciesMs, 99))} ms`);
  }
  await server.close();

  const claimTarget = await createTarget(pool, { name: 'claims', databaseUrl: 'postgres://u:p@127.0.0.1:1/none', storeUrl: 'file:///bench', exclusive: false });
  const claimResults: ClaimResult[] = [];
  for (const workers of workerCounts) {
    log(`claims: ${workers} loop(s) for ${claimSeconds} s`);
    const result = await measureClaims(catalogUrl, pool, claimTarget.id, workers);
    claimResults.push(result);
    log(`  ${result.claims} claims, ${((result.claims * 1000) / result.elapsedMs).toFixed(0)}/s`);
  }
  const loadAfter = os.loadavg()[0]!;

  const machine = await describeMachine();
  const lines = [
    '# API benchmark',
    '',
    `\`npm run bench:api -- --rate ${rates.join(',')} --seconds ${seconds} --claim-seconds ${claimSeconds} --workers ${workerCounts.join(',')}\` — ${machine.date.slice(0, 10)}, took ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    '',
    '## Machine',
    '',
    `- CPU: ${machine.cpu}, ${machine.cores} cores; memory ${machine.memoryGB} GB; ${machine.kernel}`,
    `- Node ${machine.node}; PostgreSQL ${serverVersion} (embedded, same machine, default settings)`,
    `- 1-minute load average: ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after (other work on this machine shares its cores)`,
    `- Date: ${machine.date}`,
    '',
    '## Run-status reads',
    '',
    `\`GET /api/v1/runs/:id\` with a viewer token (token lookup, run lookup, JSON serialization), over 500 of 2,000 seeded finished runs, ` +
      `from a separate Node process on loopback (fetch, keep-alive). Open loop: request *i* is due at *i* / rate and its latency counts from then, so client-side queueing is included.`,
    '',
    '| target rate (req/s) | achieved (req/s) | requests ok | errors | dropped | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...readResults.map(
      ({ rate, result }) =>
        `| ${rate} | ${((result.ok * 1000) / result.elapsedMs).toFixed(0)} | ${result.ok} | ${result.errors} | ${result.dropped} | ${ms(percentile(result.latenciesMs, 50))} | ${ms(percentile(result.latenciesMs, 90))} | ${ms(percentile(result.latenciesMs, 99))} | ${ms(result.latenciesMs.at(-1) ?? NaN)} |`,
    ),
    '',
    '## Claims',
    '',
    `\`claimNextRun\` + \`finalizeRun\` (the fenced SQL every worker uses) on ${CLAIM_RUNS.toLocaleString('en-US')} queued runs of one non-exclusive target, ` +
      `N concurrent loops each on its own connection, for ${claimSeconds} s. One cycle = one claim and one finalize (two statements, each with its event insert).`,
    '',
    '| loops | claims | claims/s | cycle p50 (ms) | cycle p99 (ms) |',
    '|---:|---:|---:|---:|---:|',
    ...claimResults.map(
      (result) =>
        `| ${result.workers} | ${result.claims} | ${((result.claims * 1000) / result.elapsedMs).toFixed(0)} | ${ms(percentile(result.cycleMs, 50))} | ${ms(percentile(result.cycleMs, 99))} |`,
    ),
    '',
  ];
  const report = lines.join('\n');
  const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
  await fs.mkdir(resultsDir, { recursive: true });
  const dated = path.join(resultsDir, `api-${machine.date.slice(0, 10)}.md`);
  await fs.writeFile(dated, report);
  await fs.writeFile(path.join(resultsDir, 'latest-api.md'), report);
  process.stdout.write(report);
  log(`wrote ${path.relative(process.cwd(), dated)} and bench/results/latest-api.md`);
}

try {
  await main();
} catch (error) {
  log(`failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
