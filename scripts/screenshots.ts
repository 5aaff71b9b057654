/**
 * The dashboard screenshots in the README: starts an embedded PostgreSQL in a temporary folder,
 * a catalog filled with a month of sample history (synthetic rows: four targets, one healthy,
 * one failing, one stale, one on demand, and a backup in progress), a server, and headless
 * Chromium, then writes
 *
 *   docs/dashboard-overview.png   every target at a glance
 *   docs/dashboard-run.png        a backup in progress
 *   docs/dashboard-charts.png     a target's size and duration over time
 *
 *   npm run screenshots
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { chromium } from 'playwright-core';
import { createDatabaseIfMissing } from '../src/db/createDatabaseIfMissing.ts';
import { loadConfig } from '../src/core/config.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { createTarget } from '../src/db/targets.ts';
import { createApiToken } from '../src/db/tokens.ts';
import { startServer } from '../src/server/startServer.ts';

const CHROMIUM = process.env.BACKSTOP_CHROMIUM ?? '/usr/bin/chromium';
const DOCS = path.resolve(import.meta.dirname, '..', 'docs');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MiB = 1024 * 1024;

/** A seeded generator: the same pictures on every run. */
function random(seed: number) {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

interface SampleRun {
  targetId: string;
  kind?: 'backup' | 'verify';
  subjectRunId?: string;
  status: 'succeeded' | 'failed' | 'timed_out' | 'running';
  /** Its target encrypts: the dump file is named `….age`, as backups name it. */
  encrypted?: boolean;
  createdAt: number;
  seconds: number;
  bytes?: number;
  error?: { code: string; message: string };
  progress?: Record<string, unknown>;
}

async function insertRun(pool: Pool, run: SampleRun): Promise<string> {
  const running = run.status === 'running';
  const files = run.bytes
    ? [{ name: `dump.pgcustom.zst${run.encrypted ? '.age' : ''}`, size: run.bytes, sha256: 'a'.repeat(48) + run.createdAt.toString(16).padStart(16, '0').slice(-16) }]
    : [];
  const artifact = run.bytes
    ? { storeUrl: 's3://acme-backups/prod?region=eu-west-1', prefix: `sample/${run.createdAt}/`, manifest: { name: 'manifest.json', size: 2_148, sha256: 'b'.repeat(64) }, files }
    : null;
  const { rows } = await pool.query<{ id: string }>(
    `insert into backstop.runs (target_id, kind, subject_run_id, status, trigger, attempt, max_attempts, deadline_at, created_at, started_at, finished_at,
       error_code, error_message, progress, artifact, lease_id, lease_expires_at, heartbeat_at, claimed_by)
     values ($1, $2, $3, $4, 'schedule', 1, 1, to_timestamp($5 / 1000.0) + interval '6 hours', to_timestamp($5 / 1000.0), to_timestamp($5 / 1000.0 + 2),
       case when $4 = 'running' then null else to_timestamp($5 / 1000.0 + 2 + $6) end, $7, $8, $9::jsonb, $10::jsonb,
       case when $4 = 'running' then gen_random_uuid() end, case when $4 = 'running' then now() + interval '1 hour' end,
       case when $4 = 'running' then now() end, 'worker-1 (pid 4242)')
     returning id`,
    [
      run.targetId,
      run.kind ?? 'backup',
      run.subjectRunId ?? null,
      run.status,
      run.createdAt,
      run.seconds,
      run.error?.code ?? null,
      run.error?.message ?? null,
      JSON.stringify(run.progress ?? (run.bytes ? { phase: 'done', bytesDumped: Math.round(run.bytes * 3.4), bytesStored: run.bytes } : null)),
      JSON.stringify(artifact),
    ],
  );
  const id = rows[0]!.id;
  const events: Array<[string, string, string, number]> = [
    ['created', 'queued', 'queued by schedule', 0],
    ['claimed', 'running', 'claimed by worker-1 (pid 4242)', 2_000],
  ];
  if (run.status !== 'failed' || run.bytes) events.push(['dump_started', 'running', 'pg_dump 17.2 against PostgreSQL 17.2', 2_400]);
  if (!running) events.push(['finished', run.status, run.error?.message ?? 'finished', 2_000 + run.seconds * 1000]);
  for (const [kind, status, message, offset] of events) {
    await pool.query(`insert into backstop.run_events (run_id, attempt, kind, status, message, at) values ($1, 1, $2, $3, $4, to_timestamp($5 / 1000.0))`, [
      id,
      kind,
      status,
      message,
      run.createdAt + offset,
    ]);
  }
  return id;
}

/** A month of history for four targets, and one backup in progress. Returns that run's id. */
async function fillCatalog(pool: Pool, now: number): Promise<string> {
  const next = random(42);
  const target = async (name: string, schedule: { cron: string; timezone: string } | null, ageDays: number) => {
    const created = await createTarget(pool, {
      name,
      databaseUrl: `postgres://backup:secret@${name}.db.internal:5432/${name}`,
      storeUrl: 's3://acme-backups/prod?region=eu-west-1',
      schedule,
      retention: { keepLast: 7, daily: 14, weekly: 8 },
      options: { encryptTo: name === 'app' ? ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'] : [] },
    });
    await pool.query(`update backstop.targets set created_at = now() - $2 * interval '1 day' where id = $1`, [created.id, ageDays]);
    return created.id;
  };

  const app = await target('app', { cron: '0 3 * * *', timezone: 'Europe/Paris' }, 40);
  let lastApp = '';
  for (let day = 30; day >= 1; day--) {
    const createdAt = now - day * DAY - 5 * HOUR;
    if (day === 12) {
      await insertRun(pool, {
        targetId: app,
        status: 'failed',
        createdAt,
        seconds: 14,
        error: { code: 'DUMP_FAILED', message: 'pg_dump exited with code 1: could not obtain lock on relation "orders"' },
      });
      continue;
    }
    const bytes = Math.round((180 + (30 - day) * 2.1 + next() * 8) * MiB);
    lastApp = await insertRun(pool, { targetId: app, status: 'succeeded', createdAt, seconds: 38 + (30 - day) * 0.9 + next() * 9, bytes, encrypted: true });
  }
  await insertRun(pool, { targetId: app, kind: 'verify', subjectRunId: lastApp, status: 'succeeded', createdAt: now - 20 * HOUR, seconds: 95 });
  const dumped = Math.round(255 * MiB * 3.4);
  const inProgress = await insertRun(pool, {
    targetId: app,
    status: 'running',
    createdAt: now - 41_000,
    seconds: 0,
    progress: {
      operation: 'backup',
      phase: 'dumping',
      bytesDone: Math.round(dumped * 0.62),
      bytesDumped: Math.round(dumped * 0.62),
      bytesStored: Math.round(dumped * 0.62 * 0.29),
      totalBytes: dumped,
      totalBasis: 'previous-backup',
      percent: 62,
      rateBytesPerSecond: Math.round((dumped * 0.62) / 39),
      etaSeconds: 24,
      elapsedMs: 39_000,
    },
  });

  const billing = await target('billing', { cron: '0 */6 * * *', timezone: 'UTC' }, 20);
  for (let slot = 40; slot >= 1; slot--) {
    await insertRun(pool, { targetId: billing, status: 'succeeded', createdAt: now - slot * 6 * HOUR - 3 * HOUR, seconds: 8 + next() * 3, bytes: Math.round((42 + next() * 2) * MiB) });
  }
  await insertRun(pool, {
    targetId: billing,
    status: 'failed',
    createdAt: now - 2 * HOUR,
    seconds: 1,
    error: {
      code: 'DATABASE_UNREACHABLE',
      message:
        'Cannot connect to the database at postgres://backup:***@billing.db.internal:5432/billing: connect ECONNREFUSED. Check that the server is running and the host, port and credentials are right.',
    },
  });

  const analytics = await target('analytics', { cron: '0 * * * *', timezone: 'UTC' }, 30);
  for (let day = 9; day >= 2; day--) {
    await insertRun(pool, { targetId: analytics, status: 'succeeded', createdAt: now - day * DAY, seconds: 300 + next() * 60, bytes: Math.round((1800 + next() * 100) * MiB) });
  }

  const reports = await target('reports', null, 10);
  await insertRun(pool, { targetId: reports, status: 'succeeded', createdAt: now - 3 * DAY, seconds: 4, bytes: Math.round(3.2 * MiB) });
  return inProgress;
}

async function main(): Promise<void> {
  await fs.access(CHROMIUM).catch(() => {
    throw new Error(`No Chromium at ${CHROMIUM}: install it with \`apt-get install -y chromium\`, or set BACKSTOP_CHROMIUM.`);
  });
  const home = await temporaryHome('backstop-screenshots-');
  try {
    const embedded = await ensureEmbeddedPostgres(home);
    await createDatabaseIfMissing(embedded.url(), 'backstop');
    const catalogUrl = embedded.url('backstop');
    const pool = createPool(catalogUrl, { max: 5 });
    try {
      await migrate(pool);
      const { rows } = await pool.query<{ now: string }>('select now() as now');
      const runId = await fillCatalog(pool, Date.parse(rows[0]!.now));
      const config = loadConfig({ BACKSTOP_DATABASE_URL: catalogUrl, BACKSTOP_HOME: home }, home);
      const server = await startServer({ pool, config, log: pino({ level: 'silent' }) }, { host: '127.0.0.1', port: 0, worker: null, processMetrics: false });
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      try {
        const { token } = await createApiToken(pool, { name: 'ops', role: 'operator' });
        const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light', locale: 'en-GB', timezoneId: 'Europe/Paris' });
        await context.addInitScript((value) => sessionStorage.setItem('backstop.token', value), token);
        const page = await context.newPage();
        await fs.mkdir(DOCS, { recursive: true });

        await page.goto(`${server.url}/#/`);
        await page.locator('.target-card').nth(3).waitFor();
        await page.locator('.live-on').waitFor();
        await page.screenshot({ path: path.join(DOCS, 'dashboard-overview.png'), fullPage: true });

        await page.goto(`${server.url}/#/runs/${runId}`);
        await page.locator('#run-progress[value]').waitFor();
        await page.locator('.timeline [data-kind="dump_started"]').waitFor();
        await page.screenshot({ path: path.join(DOCS, 'dashboard-run.png'), fullPage: true });

        await page.goto(`${server.url}/#/targets/app`);
        await page.locator('#chart-size circle.point').first().waitFor();
        await page.locator('#chart-duration .point-bad').first().waitFor();
        await page.locator('.charts').screenshot({ path: path.join(DOCS, 'dashboard-charts.png') });
        process.stdout.write(`Wrote ${['dashboard-overview.png', 'dashboard-run.png', 'dashboard-charts.png'].map((file) => path.join('docs', file)).join(', ')}\n`);
      } finally {
        await browser.close();
        await server.close('screenshots taken');
      }
    } finally {
      await pool.end();
    }
  } finally {
    await stopEmbeddedPostgres(home, { mode: 'immediate' }).catch(() => {});
    await fs.rm(home, { recursive: true, force: true });
  }
}

await main();
