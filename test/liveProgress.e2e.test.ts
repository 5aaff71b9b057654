/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { RunProgress } from '../src/core/runProgress.ts';
import { createTarget } from '../src/db/targets.ts';
import { launchChromium } from './support/chromium.ts';
import { repoRoot } from './support/cli.ts';
import { adminQuery, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { readEventStream, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * Progress that a person can watch, end to end, on a backup that takes more than ten seconds
 * of a real database: a `backstop run` over HTTP (as a GitHub job runs it) in a real
 * pseudo-terminal (util-linux `script`), watched at once through the API, its event stream,
 * and three dashboard pages in headless Chromium (the runs list, the overview, the run page);
 * then a restore in a terminal and one through the API, each watched through the API.
 *
 * The database is made big enough, with generate_series, that dumping it takes well over
 * ten seconds on a two-core machine; every wait polls with a deadline, and nothing assumes
 * more of the machine's speed than that floor.
 */

/** Rows of 16 IPv4 addresses: text output costs PostgreSQL more per byte stored than most types. */
const BASE_ROWS = Number(process.env.BACKSTOP_TEST_PROGRESS_ROWS ?? 625_000);
/** Each doubling copies the table into itself: cheaper than computing the rows again. */
const DOUBLINGS = 3;
const BACKUP_FLOOR_MS = 10_000;
const WAIT = 60_000;
const bin = path.join(repoRoot, 'bin', 'backstop.js');

async function createAddressDatabase(): Promise<TestDatabase> {
  const database = await createTestDatabase('addresses');
  const columns = Array.from({ length: 16 }, (_, k) => `'10.0.0.0'::inet + i * ${k + 1} as a${k + 1}`).join(', ');
  await adminQuery(`create unlogged table addresses as select ${columns} from generate_series(1, ${BASE_ROWS}) i`, [], database.url);
  for (let i = 0; i < DOUBLINGS; i++) await adminQuery('insert into addresses select * from addresses', [], database.url);
  return database;
}

interface Terminal {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** Every chunk the terminal printed, with when it arrived (performance.now()). */
  chunks: Array<{ at: number; text: string }>;
  exited: Promise<number | null>;
}

/** `backstop ARGS` in a real pseudo-terminal: util-linux `script`, its output read as it streams. */
function inTerminal(args: string[], env: Record<string, string>): Terminal {
  const command = [process.execPath, bin, ...args].join(' ');
  const child = spawn('script', ['-qefc', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BACKSTOP_LOG_LEVEL: 'error', ...env } });
  const chunks: Terminal['chunks'] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push({ at: performance.now(), text: chunk.toString() }));
  child.stderr.on('data', (chunk: Buffer) => chunks.push({ at: performance.now(), text: chunk.toString() }));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, chunks, exited };
}

/** The distinct redraws of the bar (lines with its characters), each with when it first appeared. */
function barLines(terminal: Terminal, word: string): Array<{ at: number; line: string }> {
  const seen = new Map<string, number>();
  for (const chunk of terminal.chunks) {
    for (const piece of chunk.text.split(/\r|\n/)) {
      // Without the terminal's control sequences.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the progress bar's terminal escapes on purpose
      const line = piece.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '').trim();
      if (/[█░]/.test(line) && line.includes(word) && !seen.has(line)) seen.set(line, chunk.at);
    }
  }
  return [...seen].map(([line, at]) => ({ at, line }));
}

/** Records, inside the page, every distinct `data-bytes` of the element `selector` finds (while it has `data-operation`=operation). */
async function recordBytes(page: Page, name: string, selector: string, operation: string): Promise<void> {
  await page.evaluate(
    ({ name, selector, operation }) => {
      const seen: Array<{ bytes: number; text: string }> = [];
      (window as unknown as Record<string, unknown>)[name] = seen;
      setInterval(() => {
        const element = document.querySelector(selector);
        if (!element || element.getAttribute('data-operation') !== operation) return;
        const bytes = Number(element.getAttribute('data-bytes'));
        if (seen.at(-1)?.bytes !== bytes) seen.push({ bytes, text: element.closest('.card, td, dd')?.textContent ?? '' });
      }, 100);
    },
    { name, selector, operation },
  );
}
const recorded = (page: Page, name: string) => page.evaluate((name) => (window as unknown as Record<string, Array<{ bytes: number; text: string }>>)[name] ?? [], name);

function assertIncreasing(values: number[], what: string): void {
  for (let i = 1; i < values.length; i++) assert.ok(values[i]! > values[i - 1]!, `${what} went back: ${values.join(', ')}`);
}

interface Sample {
  at: number;
  status: string;
  progress: RunProgress | null;
}

/** Polls GET /api/v1/runs/:id until `done` says so, keeping every answer. */
async function watchRun(api: TestServer, runId: string, done: (sample: Sample) => boolean | Promise<boolean>, timeoutMs: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  await waitFor(
    `run ${runId} to get there`,
    async () => {
      const run = (await api.request('GET', `/api/v1/runs/${runId}`)).json;
      const sample = { at: performance.now(), status: run.status, progress: run.progress };
      samples.push(sample);
      return done(sample);
    },
    timeoutMs,
    200,
  );
  return samples;
}

/** Distinct byte counts while `operation` was in `phase`, in the order the API showed them, with the catalog's time of each. */
function distinctCounts(samples: Sample[], operation: string, phase: string): Array<{ bytes: number; updatedAt: string }> {
  const counts: Array<{ bytes: number; updatedAt: string }> = [];
  for (const { progress } of samples) {
    if (progress?.operation !== operation || progress.phase !== phase) continue;
    if (counts.at(-1)?.bytes !== progress.bytesDone) counts.push({ bytes: progress.bytesDone, updatedAt: progress.updatedAt! });
  }
  return counts;
}

/** Milliseconds between successive catalog writes of the progress seen in `samples` while in `phase`. */
function refreshGaps(samples: Sample[], phase: string): number[] {
  const stamps = [...new Set(samples.filter((sample) => sample.progress?.phase === phase).map((sample) => sample.progress!.updatedAt!))].map(Date.parse);
  return stamps.slice(1).map((stamp, i) => stamp - stamps[i]!);
}

describe('progress that is live everywhere', { timeout: 1_200_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  const pageErrors: string[] = [];
  const destinations: TestDatabase[] = [];
  const terminals: Terminal[] = [];
  let backupRunId = '';

  before(async () => {
    await fs.access('/usr/bin/script').catch(() => {
      throw new Error('No `script` (util-linux) at /usr/bin/script: install it with `apt-get install -y util-linux`.');
    });
    catalog = await createTestCatalog();
    source = await createAddressDatabase();
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-live-progress-'));
    api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_LEASE_TTL: '30', BACKSTOP_HEARTBEAT_INTERVAL: '10' } });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await context.addInitScript((token) => {
      // Every page starts signed in (a viewer); a new tab's first, blank document has no storage.
      if (location.protocol === 'http:') sessionStorage.setItem('backstop.token', token);
    }, api.tokens.viewer);
    context.on('page', (page) => {
      page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) pageErrors.push(`console: ${message.text()}`);
      });
    });
  });

  after(async () => {
    for (const terminal of terminals) if (terminal.child.exitCode === null) terminal.child.kill('SIGKILL');
    await Promise.all(terminals.map((terminal) => terminal.exited));
    await browser?.close();
    await api?.close();
    await catalog?.close();
    await source?.drop();
    for (const database of destinations) await database.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('a backup over HTTP in a terminal moves its bar, the API, the event stream, the runs list, the overview and the run page', async () => {
    const target = await createTarget(catalog.pool, { name: 'addresses', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
    const [list, overview] = [await context.newPage(), await context.newPage()];
    await list.goto(`${api.url}/#/runs`);
    await list.locator('.live-on').waitFor({ timeout: WAIT });
    await overview.goto(`${api.url}/#/`);
    await overview.locator(`[data-target="${target.name}"]`).waitFor({ timeout: WAIT });
    await overview.locator('.live-on').waitFor({ timeout: WAIT });

    const triggered = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: target.name } });
    assert.equal(triggered.status, 201, triggered.text);
    const runId = triggered.json.id as string;
    backupRunId = runId;
    const run = await context.newPage();
    await run.goto(`${api.url}/#/runs/${runId}`);
    await run.getByText('Waiting for a worker').waitFor({ timeout: WAIT });
    await list.locator(`tr[data-run="${runId}"]`).waitFor({ timeout: WAIT });
    await recordBytes(run, 'runPage', '#run-progress', 'backup');
    await recordBytes(list, 'runsList', `tr[data-run="${runId}"] .run-progress progress`, 'backup');
    await recordBytes(overview, 'overviewCard', `[data-target="${target.name}"] .card-progress progress`, 'backup');
    const stream = readEventStream(await fetch(`${api.url}/api/v1/runs/${runId}/events`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${api.tokens.viewer}` } }));

    // What a GitHub job does: the run's own token, the API's address, the database from its environment.
    const token = (await api.request('POST', `/api/v1/runs/${runId}/runner-token`, { token: api.tokens.operator })).json.token as string;
    const terminal = inTerminal(['run', runId], { BACKSTOP_API_URL: api.url, BACKSTOP_RUNNER_TOKEN: token, BACKSTOP_SOURCE_URL: source.url });
    terminals.push(terminal);
    const samples = await watchRun(api, runId, (sample) => !['queued', 'dispatched', 'running', 'cancelling'].includes(sample.status), 900_000);
    const finishedAt = performance.now();
    assert.equal(await terminal.exited, 0, terminal.chunks.map((chunk) => chunk.text).join(''));
    await stream.ended;

    const finished = (await api.request('GET', `/api/v1/runs/${runId}`)).json;
    assert.equal(finished.status, 'succeeded');
    const tookMs = Date.parse(finished.finishedAt) - Date.parse(finished.startedAt);
    assert.ok(tookMs >= BACKUP_FLOOR_MS, `the backup took ${tookMs} ms, under the ${BACKUP_FLOOR_MS} ms this test needs: raise BACKSTOP_TEST_PROGRESS_ROWS`);
    assert.equal(finished.progress.phase, 'done');

    // The API: the count rises while pg_dump streams, with a rate, a total, a percent and time left.
    const counts = distinctCounts(samples, 'backup', 'dumping');
    assert.ok(counts.length >= 3, `only ${counts.length} distinct counts in the API: ${JSON.stringify(counts)}`);
    assertIncreasing(
      counts.map((count) => count.bytes),
      'bytes in the API',
    );
    const moving = samples.map((sample) => sample.progress).filter((progress) => progress?.phase === 'dumping' && progress.rateBytesPerSecond);
    assert.ok(moving.length > 0, 'a rate was shown');
    assert.ok(
      moving.some((progress) => progress!.totalBasis === 'database-size' && progress!.percent !== null && progress!.etaSeconds !== null),
      'a first backup is told against the database size, with percent and time left',
    );
    assert.ok(
      moving.every((progress) => progress!.bytesStored > 0 || progress!.bytesDone < 10 * 1024 * 1024),
      'stored bytes move too',
    );
    const gaps = refreshGaps(samples, 'dumping');
    const sortedGaps = [...gaps].sort((a, b) => a - b);
    const medianGap = sortedGaps[Math.floor(sortedGaps.length / 2)]!;
    assert.ok(sortedGaps.at(-1)! <= 2_000, `a gap of ${sortedGaps.at(-1)} ms between two refreshes while dumping: ${gaps.join(', ')}`);

    // The run's event stream carried the same progress as it moved.
    const streamed = stream.messages.filter((message) => message.event === 'progress').map((message) => JSON.parse(message.data).progress as RunProgress);
    const streamedCounts = [...new Set(streamed.filter((progress) => progress.phase === 'dumping').map((progress) => progress.bytesDone))];
    assert.ok(streamedCounts.length >= 3, `only ${streamedCounts.length} distinct counts on the event stream`);
    assertIncreasing(streamedCounts, 'bytes on the event stream');

    // Three pages in Chromium, none reloaded: each showed the count rise.
    for (const [page, name] of [
      [run, 'runPage'],
      [list, 'runsList'],
      [overview, 'overviewCard'],
    ] as const) {
      const shown = await recorded(page, name);
      assert.ok(shown.length >= 3, `${name} showed ${shown.length} distinct counts: ${JSON.stringify(shown.map((entry) => entry.bytes))}`);
      assertIncreasing(
        shown.map((entry) => entry.bytes),
        `bytes on the ${name}`,
      );
    }
    const runPageTexts = (await recorded(run, 'runPage')).map((entry) => entry.text);
    assert.ok(
      runPageTexts.some((text) => /\d B\/s|iB\/s/.test(text) && /left/.test(text)),
      `the run page shows a rate and the time left: ${runPageTexts.at(-1)}`,
    );
    await run.locator('.run-status [data-status="succeeded"], #run-status [data-status="succeeded"]').first().waitFor({ timeout: WAIT });
    assert.equal(await run.locator('#run-progress').count(), 0, 'a finished backup shows no bar');
    await list
      .locator(`tr[data-run="${runId}"] .run-size`)
      .filter({ hasText: /iB|\d B/ })
      .waitFor({ timeout: WAIT });
    assert.match(await list.locator(`tr[data-run="${runId}"] .run-kind`).innerText(), /backup/);
    assert.match(await list.locator(`tr[data-run="${runId}"] .run-duration`).innerText(), /^\d+ s$|^\d+ min \d+ s$/);

    // The terminal: a bar redrawn in place, its figures changing while the dump ran.
    const lines = barLines(terminal, 'dumping');
    assert.ok(lines.length >= 3, `the terminal showed ${lines.length} distinct bars: ${JSON.stringify(lines.map((line) => line.line))}`);
    const spread = lines.at(-1)!.at - lines[0]!.at;
    assert.ok(spread >= 2_000 && lines[0]!.at < finishedAt - 2_000, `the bar changed over ${spread} ms, as the dump ran`);
    const output = terminal.chunks.map((chunk) => chunk.text).join('');
    assert.match(output, /of ~[\d.]+ [KMG]iB \(\d+%\)/, 'the bar says the estimate and the percent');
    assert.match(output, new RegExp(`Run ${runId} \\(addresses\\) succeeded`));

    console.log(
      `live progress: backup ${tookMs} ms; API ${counts.length} distinct counts (refresh median ${medianGap} ms, max ${sortedGaps.at(-1)} ms); ` +
        `stream ${streamedCounts.length}; run page ${(await recorded(run, 'runPage')).length}, runs list ${(await recorded(list, 'runsList')).length}, overview ${(await recorded(overview, 'overviewCard')).length}; terminal ${lines.length} bars`,
    );
    assert.deepEqual(pageErrors, []);
  });

  it('a restore in a terminal moves its bar, the API and the run page', async () => {
    assert.ok(backupRunId, 'the backup of the previous test');
    const destination = await createTestDatabase('restored');
    destinations.push(destination);
    const page = await context.newPage();
    await page.goto(`${api.url}/#/runs/${backupRunId}`);
    await page.locator('.files-table').waitFor({ timeout: WAIT });

    const terminal = inTerminal(['restore', backupRunId, '--to', destination.url], { BACKSTOP_DATABASE_URL: catalog.url });
    terminals.push(terminal);
    const early = await watchRun(api, backupRunId, (sample) => sample.progress?.operation === 'restore' && sample.progress.phase === 'restoring', 900_000);
    // A page opened while the restore runs shows it, and follows it on the run's event stream.
    await page.reload();
    await page.locator('#run-progress[data-operation="restore"]').waitFor({ timeout: WAIT });
    await recordBytes(page, 'restore', '#run-progress', 'restore');
    const samples = [...early, ...(await watchRun(api, backupRunId, () => terminal.child.exitCode !== null, 900_000))];
    assert.equal(await terminal.exited, 0, terminal.chunks.map((chunk) => chunk.text).join(''));
    const counts = distinctCounts(samples, 'restore', 'restoring');
    assert.ok(counts.length >= 3, `only ${counts.length} distinct restore counts in the API: ${JSON.stringify(counts)}`);
    assertIncreasing(
      counts.map((count) => count.bytes),
      'restored bytes in the API',
    );
    const shown = await recorded(page, 'restore');
    assert.ok(shown.length >= 2, `the run page showed ${shown.length} distinct restore counts`);
    assertIncreasing(
      shown.map((entry) => entry.bytes),
      'restored bytes on the run page',
    );
    const lines = barLines(terminal, 'restoring');
    assert.ok(lines.length >= 3, `the terminal showed ${lines.length} distinct restore bars`);
    assert.match(terminal.chunks.map((chunk) => chunk.text).join(''), /Restored backup .* \(1 tables, row counts checked\)/);
    const rows = await adminQuery<{ n: string }>('select count(*) as n from addresses', [], destination.url);
    assert.equal(Number(rows[0]!.n), BASE_ROWS * 2 ** DOUBLINGS);
    await destination.drop();
    console.log(`live progress: restore in a terminal, API ${counts.length} distinct counts, run page ${shown.length}, terminal ${lines.length} bars`);
  });

  it('a restore through the API with two jobs shows its progress move', async () => {
    const destination = await createTestDatabase('restored');
    destinations.push(destination);
    const endings = async () =>
      ((await api.request('GET', `/api/v1/runs/${backupRunId}/events`)).json.items as Array<{ kind: string; message: string }>).filter(
        (event) => event.kind === 'restored' || event.kind === 'restore_failed',
      );
    const before = (await endings()).length;
    const started = await api.request('POST', `/api/v1/runs/${backupRunId}/restore`, {
      token: api.tokens.admin,
      body: { databaseUrl: destination.url, jobs: 2, privilegedRole: 'postgres' },
    });
    assert.equal(started.status, 202, started.text);
    const samples = await watchRun(api, backupRunId, async () => (await endings()).length > before, 900_000);
    const outcome = (await endings()).at(-1)!;
    assert.equal(outcome.kind, 'restored', outcome.message);
    const counts = distinctCounts(samples, 'restore', 'restoring');
    assert.ok(counts.length >= 3, `only ${counts.length} distinct restore counts in the API: ${JSON.stringify(counts)}`);
    assertIncreasing(
      counts.map((count) => count.bytes),
      'restored bytes in the API',
    );
    assert.equal((await api.request('GET', `/api/v1/runs/${backupRunId}`)).json.progress.operation, 'backup', 'once it ended, the run shows its backup again');
    console.log(`live progress: restore through the API (2 jobs), API ${counts.length} distinct counts`);
  });
});
