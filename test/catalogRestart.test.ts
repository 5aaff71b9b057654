import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { createDatabaseIfMissing } from '../src/db/createDatabaseIfMissing.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome, type EmbeddedInstance } from '../src/db/embeddedPostgres.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { reapRuns } from '../src/db/runLeases.ts';
import { listRuns } from '../src/db/runListing.ts';
import { createRun, getRun, type RunRecord } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { killAll, startCli, type CliProcess } from './support/cli.ts';
import { createSampleDatabase, dumpSessions, holdTableLock, type TestDatabase } from './support/pg.ts';
import { processesMatching } from './support/processes.ts';
import { filesUnder } from './support/store.ts';
import pino from 'pino';
import { pruneTargets } from '../src/operations/pruneTargets.ts';
import { waitFor } from './support/wait.ts';

/**
 * The catalog's PostgreSQL goes away while a runner is finishing its backup. The catalog here
 * is a server of its own (stopping the shared test server would take every other test file
 * down with it); the source database stays on the shared server, held by a table lock so that
 * the dump finishes exactly when the test lets it.
 */

const CATALOG_DATABASE = 'backstop';
const TEST_TIMEOUT = { timeout: 300_000 };

/** Resolves with the exit, or fails the test if the process is still running after `ms`. */
async function exitWithin(cli: CliProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the runner did not exit within ${ms} ms; stderr:\n${cli.stderr().slice(-4000)}`)), ms);
  });
  try {
    return await Promise.race([cli.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('the catalog restarts while a run is finishing', () => {
  let home: string;
  let server: EmbeddedInstance;
  let pool: Pool;
  let source: TestDatabase;
  let storeDir: string;
  let processes: CliProcess[] = [];
  let lock: { release(): Promise<void> } | undefined;

  before(async () => {
    home = await temporaryHome('backstop-catalog-restart-');
    server = await ensureEmbeddedPostgres(home);
    await createDatabaseIfMissing(server.url(), CATALOG_DATABASE);
    pool = createPool(server.url(CATALOG_DATABASE));
    await migrate(pool);
    source = await createSampleDatabase(500);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-store-'));
  });

  beforeEach(async () => {
    // A test that failed while the catalog was down must not take the next one with it.
    const running = await ensureEmbeddedPostgres(home);
    assert.equal(running.port, server.port);
  });

  afterEach(async () => {
    await killAll(processes);
    processes = [];
    await lock?.release();
    lock = undefined;
    await waitFor('no pg_dump left for the source', async () => (await processesMatching('pg_dump', source.name)).length === 0, 20_000);
  });

  after(async () => {
    await pool?.end().catch(() => {});
    await stopEmbeddedPostgres(home, { mode: 'immediate' }).catch(() => {});
    await fs.rm(home, { recursive: true, force: true });
    await source?.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  const queueRun = async (targetName: string): Promise<RunRecord> => {
    const target = await createTarget(pool, { name: targetName, databaseUrl: source.url, storeUrl: `file://${storeDir}` });
    return createRun(pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 3_600_000 });
  };

  const startRunner = (runId: string, leaseTtlSeconds: number): CliProcess => {
    const cli = startCli(['run', runId], {
      BACKSTOP_DATABASE_URL: server.url(CATALOG_DATABASE),
      BACKSTOP_LEASE_TTL: String(leaseTtlSeconds),
      BACKSTOP_HEARTBEAT_INTERVAL: '0.5',
    });
    processes.push(cli);
    return cli;
  };

  const waitUntilDumping = async (runId: string) => {
    await waitFor(`run ${runId} running`, async () => (await getRun(pool, runId)).status === 'running');
    await waitFor(`pg_dump of ${runId} connected`, async () => (await dumpSessions(runId)) > 0);
  };

  const stopCatalog = async () => {
    assert.equal(await stopEmbeddedPostgres(home, { mode: 'fast' }), true, 'the catalog server stopped');
  };

  const restartCatalog = async () => {
    const restarted = await ensureEmbeddedPostgres(home);
    assert.equal(restarted.port, server.port, 'the catalog came back on the same port');
  };

  it('a restart within the lease: finalize retries until it gets through; the run succeeds with its artifact', TEST_TIMEOUT, async () => {
    lock = await holdTableLock(source.url, 'orders');
    const run = await queueRun('restart-within-lease');
    const runner = startRunner(run.id, 10);
    await waitUntilDumping(run.id);

    await stopCatalog();
    // The dump completes and is stored while the catalog is down; only the finalize is left.
    await lock.release();
    lock = undefined;
    await waitFor('a failed finalize', () => runner.stderr().includes('finalize failed'), 8_000);
    await restartCatalog();

    const exit = await exitWithin(runner, 20_000);
    assert.equal(exit.code, 0, runner.stderr().slice(-4000));
    const finished = await getRun(pool, run.id);
    assert.equal(finished.status, 'succeeded');
    assert.equal(finished.error, null);
    const artifact = finished.artifact;
    assert.ok(artifact, 'the run records its artifact');
    for (const file of [...artifact.files, artifact.manifest]) {
      const size: number = (await fs.stat(path.join(storeDir, artifact.prefix, file.name))).size;
      assert.equal(size, file.size, `${file.name} on disk`);
    }
    assert.ok(!(await filesUnder(storeDir)).some((file) => file.includes('.partial-')), 'no partial file left');
    const events = await listRunEvents(pool, run.id);
    const finishedEvents = events.filter((event) => event.kind === 'finished');
    assert.equal(finishedEvents.length, 1, JSON.stringify(events));
    assert.equal(finishedEvents[0]!.status, 'succeeded');
    assert.match(runner.stdout(), new RegExp(`Run ${run.id} \\(restart-within-lease\\) succeeded`));
  });

  it('down longer than the lease: the runner gives up, the reaper times the run out, garbage collection keeps its complete files and reports them', TEST_TIMEOUT, async () => {
    // Long enough that, once the lock is released, the dump and its manifest are written well
    // inside the lease even on a loaded machine (the files are what this test follows).
    const leaseTtlSeconds = 8;
    lock = await holdTableLock(source.url, 'orders');
    const run = await queueRun('restart-after-lease');
    const runner = startRunner(run.id, leaseTtlSeconds);
    await waitUntilDumping(run.id);

    await stopCatalog();
    await lock.release();
    lock = undefined;
    // The catalog stays down until the runner has given up.
    const exit = await exitWithin(runner, 40_000);
    assert.notEqual(exit.code, 0, runner.stderr().slice(-4000));
    assert.ok(exit.code === 7 || exit.code === 6, `exit ${exit.code}: ${runner.stderr().slice(-4000)}`);
    assert.match(runner.stderr(), /\[(CATALOG_UNAVAILABLE|LEASE_LOST)\]/);
    // The outcome is unknown to the runner (a finalize may have committed with its answer
    // lost), so it keeps its files rather than risk deleting a recorded backup.

    await restartCatalog();
    // The runner never got its outcome through: the run is still "running" until the reaper ends it.
    const reaped = await waitFor('the reaper ends the run', async () => (await reapRuns(pool)).find((candidate) => candidate.id === run.id), 10_000, 100);
    assert.deepEqual(reaped, { id: run.id, previousStatus: 'running', status: 'timed_out', errorCode: 'LEASE_EXPIRED' });
    const ended = await getRun(pool, run.id);
    assert.equal(ended.status, 'timed_out');
    assert.equal(ended.artifact, null);
    assert.deepEqual(
      (await listRunEvents(pool, run.id)).map((event) => event.kind).filter((kind) => kind === 'finished' || kind === 'reaped'),
      ['reaped'],
    );
    assert.ok(!(await listRuns(pool, { status: 'succeeded' })).some((listed) => listed.id === run.id), 'not listed as a backup');
    assert.ok(
      (await filesUnder(storeDir)).some((file) => file.includes(run.id) && file.endsWith('manifest.json')),
      'kept until collected',
    );
    // Garbage collection: a complete backup whose row says timed_out is no garbage (a catalog
    // restored from before it finished says the same of a real backup): kept, reported.
    const report = await pruneTargets({ db: pool, log: pino({ level: 'silent' }) }, { gracePeriodMs: 0 });
    assert.equal(report.targets.flatMap((target) => (target.error ? [target.error] : [])).length, 0);
    assert.deepEqual(
      report.targets
        .flatMap((target) => target.unknown)
        .filter((item) => item.runId === run.id)
        .map((item) => item.reason),
      ['run-not-succeeded'],
    );
    assert.ok(
      (await filesUnder(storeDir)).some((file) => file.includes(run.id) && file.endsWith('manifest.json')),
      'the complete backup was collected',
    );
  });
});
