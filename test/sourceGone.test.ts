import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { fastLeaseEnv, killAll, startCli, type CliProcess } from './support/cli.ts';
import { adminQuery, createSampleDatabase, createTestCatalog, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { processesMatching } from './support/processes.ts';
import { filesUnder } from './support/store.ts';
import { waitFor } from './support/wait.ts';

/**
 * The database being backed up goes away in the middle of the dump (the chaos suite's
 * "target gone" fault, made deterministic with a table lock): the run ends `failed` at once,
 * with an error that says what happened, never `INTERNAL` and never a hang.
 */
describe('the source database goes away mid-dump', () => {
  let catalog: TestCatalog;
  let storeDir: string;
  let processes: CliProcess[] = [];
  let lock: { release(): Promise<void> } | undefined;
  const sources: TestDatabase[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-gone-'));
  });
  afterEach(async () => {
    await killAll(processes);
    processes = [];
    await lock?.release();
    lock = undefined;
  });
  after(async () => {
    for (const source of sources) await source.drop();
    await catalog.close();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  const dumpingRun = async (name: string, options: { checksums?: boolean } = {}) => {
    const source = await createSampleDatabase(300);
    sources.push(source);
    const target = await createTarget(catalog.pool, { name, databaseUrl: source.url, storeUrl: `file://${storeDir}`, options });
    lock = await holdTableLock(source.url, 'orders');
    const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 3_600_000 });
    const runner = startCli(['run', run.id], { BACKSTOP_DATABASE_URL: catalog.url, ...fastLeaseEnv });
    processes.push(runner);
    await waitFor(`pg_dump of ${run.id} connected`, async () => (await dumpSessions(run.id)) > 0, 30_000);
    return { source, run, runner };
  };

  it('the checksum session is terminated: failed with DATABASE_UNREACHABLE naming the database, not INTERNAL', { timeout: 120_000 }, async () => {
    // With checksums, Backstop reads every row on its own session, in the dump's snapshot (blocked on the lock too).
    const { source, run, runner } = await dumpingRun('gone-session', { checksums: true });
    // Backstop's own session on the source; pg_dump keeps its own.
    const [terminated] = await adminQuery<{ count: string }>(
      `select count(*) filter (where pg_terminate_backend(pid)) as count from pg_stat_activity where datname = $1 and application_name = 'backstop'`,
      [source.name],
    );
    assert.equal(Number(terminated!.count), 1);
    await lock!.release();
    lock = undefined;
    const exit = await runner.exited;
    assert.equal(exit.code, 8, runner.stderr().slice(-2000));
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.status, 'failed');
    assert.equal(ended.error?.code, 'DATABASE_UNREACHABLE');
    assert.match(ended.error!.message, new RegExp(`database "${source.name}".*went away.*terminating connection`));
    assert.deepEqual(
      (await filesUnder(storeDir)).filter((file) => file.includes(run.id)),
      [],
    );
  });

  it('the database is dropped: failed with an error from the dump, files removed, no pg_dump left', { timeout: 120_000 }, async () => {
    const { source, run, runner } = await dumpingRun('gone-dropped');
    await adminQuery(`drop database ${source.name} with (force)`);
    const exit = await runner.exited;
    assert.notEqual(exit.code, 0);
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.status, 'failed');
    assert.ok(ended.error && ['DUMP_FAILED', 'DATABASE_UNREACHABLE'].includes(ended.error.code), JSON.stringify(ended.error));
    assert.match(ended.error!.message, /terminating connection|does not exist|went away|server closed the connection unexpectedly/);
    assert.deepEqual(
      (await filesUnder(storeDir)).filter((file) => file.includes(run.id)),
      [],
    );
    assert.deepEqual(await processesMatching('pg_dump', source.name), []);
  });
});
