import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { fastLeaseEnv, killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import {
  createSampleDatabase,
  createTestCatalog,
  createTestDatabase,
  dumpSessions,
  holdTableLock,
  schemaOf,
  tableFingerprints,
  type TestCatalog,
  type TestDatabase,
} from './support/pg.ts';
import { processesMatching } from './support/processes.ts';
import { startS3rver, type S3rverHandle } from './support/s3rver.ts';
import { filesUnder } from './support/store.ts';
import { waitFor } from './support/wait.ts';

/**
 * Parallel backups (--jobs) as runs: through the CLI, and the faults of the middle of a dump
 * (one pg_dump killed, a cancel, the store gone), each made deterministic with a table lock
 * that holds every stream that reads `orders`.
 */
describe('parallel backups as runs', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  let processes: CliProcess[] = [];
  let lock: { release(): Promise<void> } | undefined;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(3000);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-parallel-runs-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
  });
  afterEach(async () => {
    await killAll(processes);
    processes = [];
    await lock?.release();
    lock = undefined;
  });
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await source.drop();
    await catalog.close();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('`backup --jobs 2` stores the schema and two data files; `restore` brings back the source', async () => {
    const backup = await runCli(['backup', source.url, '--target', 'cli-jobs', '--jobs', '2', '--json'], env);
    assert.equal(backup.code, 0, backup.stderr);
    const run = JSON.parse(backup.stdout);
    assert.equal(run.status, 'succeeded');
    assert.deepEqual((await fs.readdir(path.join(storeDir, run.artifact.prefix))).sort(), ['data-1.pgcustom.zst', 'data-2.pgcustom.zst', 'manifest.json', 'schema.pgcustom.zst']);
    const shown = JSON.parse((await runCli(['target', 'show', 'cli-jobs', '--json'], env)).stdout);
    assert.equal(shown.options.jobs, 2);

    const target = await createTestDatabase('cli_jobs');
    cleanups.push(target.drop);
    const restore = await runCli(['restore', run.id, '--to', target.url, '--jobs', '2', '--json'], env);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(JSON.parse(restore.stdout).tablesChecked, 3);
    assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
    assert.equal(await schemaOf(target.url), await schemaOf(source.url));

    // Without --jobs (one job): the same database, restored in one transaction.
    const single = await createTestDatabase('cli_jobs_one');
    cleanups.push(single.drop);
    const restoreOne = await runCli(['restore', run.id, '--to', single.url, '--json'], env);
    assert.equal(restoreOne.code, 0, restoreOne.stderr);
    assert.equal(JSON.parse(restoreOne.stdout).tablesChecked, 3);
    assert.deepEqual(await tableFingerprints(single.url), await tableFingerprints(source.url));
    assert.equal(await schemaOf(single.url), await schemaOf(source.url));

    // A drill restores it the same way into a scratch database and compares every table.
    const verify = await runCli(['verify', run.id, '--json'], env);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(JSON.parse(verify.stdout).status, 'succeeded');
    assert.equal((await getRun(catalog.pool, run.id)).verification?.status, 'passed');
    assert.equal((await getRun(catalog.pool, run.id)).verification?.tables, 3);
  });

  it('`target add --jobs` means pg_dump streams for a database, and is refused for another profile', async () => {
    const added = await runCli(['target', 'add', 'streams', '--database-url', source.url, '--jobs', '3', '--skip-checks', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(JSON.parse(added.stdout).options.jobs, 3);
    assert.equal(JSON.parse(added.stdout).options.server, undefined);
    const refused = await runCli(['target', 'add', 'supa', '--database-url', source.url, '--profile', 'supabase', '--jobs', '2', '--skip-checks'], env);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /--jobs.*only the default profile/);
  });

  /** A queued run of a --jobs 2 target, its runner started, its pg_dumps connected and blocked on the lock. */
  const dumpingRun = async (name: string, storeUrl = `file://${storeDir}`, extraEnv: Record<string, string> = {}) => {
    const target = await createTarget(catalog.pool, { name, databaseUrl: source.url, storeUrl, options: { jobs: 2 } });
    lock = await holdTableLock(source.url, 'orders');
    const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 3_600_000 });
    const runner = startCli(['run', run.id], { BACKSTOP_DATABASE_URL: catalog.url, ...fastLeaseEnv, ...extraEnv });
    processes.push(runner);
    // At least the schema file's pg_dump and the stream with `orders`, both waiting on the
    // lock (the other stream may be done already).
    await waitFor(`pg_dumps of ${run.id} connected`, async () => (await dumpSessions(run.id)) >= 2, 30_000);
    return { run, runner };
  };
  const assertNothingLeft = async (runId: string, root = storeDir) => {
    assert.deepEqual(
      (await filesUnder(root)).filter((file) => file.includes(runId)),
      [],
    );
    await waitFor('no pg_dump left', async () => (await processesMatching('pg_dump', source.name)).length === 0, 20_000);
  };

  it('one pg_dump killed (SIGKILL) mid-dump: failed with DUMP_FAILED naming the kill, the other streams stopped, no file left', { timeout: 120_000 }, async () => {
    const { run, runner } = await dumpingRun('killed-stream');
    const pids = await processesMatching('pg_dump', source.name);
    assert.ok(pids.length >= 2, `pg_dumps: ${pids.join(', ')}`);
    process.kill(pids[0]!, 'SIGKILL');
    const exit = await runner.exited;
    assert.notEqual(exit.code, 0);
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.status, 'failed', runner.stderr());
    assert.equal(ended.error?.code, 'DUMP_FAILED');
    assert.match(ended.error!.message, /pg_dump was killed by SIGKILL/);
    // The others were stopped by Backstop, not left waiting on the lock.
    assert.deepEqual(await processesMatching('pg_dump', source.name), []);
    await lock!.release();
    lock = undefined;
    await assertNothingLeft(run.id);
  });

  it('SIGTERM to `backstop run` mid-dump: cancelled, every stream stopped, no file left', { timeout: 120_000 }, async () => {
    const { run, runner } = await dumpingRun('cancelled-streams');
    runner.child.kill('SIGTERM');
    const exit = await runner.exited;
    assert.equal(exit.code, 130, runner.stderr());
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.status, 'cancelled');
    assert.equal(ended.error?.code, 'CANCELLED');
    assert.deepEqual(await processesMatching('pg_dump', source.name), []);
    await assertNothingLeft(run.id);
  });

  describe('S3 (s3rver)', () => {
    let s3: S3rverHandle;
    before(async () => {
      s3 = await startS3rver();
    });
    after(async () => {
      await s3?.stop();
    });

    it('the store goes away mid-dump: failed with STORE_WRITE_FAILED, nothing left once it is back', { timeout: 120_000 }, async () => {
      const { run, runner } = await dumpingRun('store-outage', s3.storeUrl('outage'), s3.env);
      try {
        await s3.halt();
        await lock!.release();
        lock = undefined;
        const exit = await runner.exited;
        assert.equal(exit.code, 12, runner.stderr());
      } finally {
        await s3.restart();
      }
      const ended = await getRun(catalog.pool, run.id);
      assert.equal(ended.status, 'failed');
      assert.equal(ended.error?.code, 'STORE_WRITE_FAILED');
      assert.equal(ended.artifact, null);
      await assertNothingLeft(run.id, path.join(s3.directory, s3.bucket));
      assert.deepEqual(await s3.pendingMultipartUploads(), []);
    });
  });
});
