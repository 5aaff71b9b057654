import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import pino from 'pino';
import { startReaper, type Reaper } from '../src/control/reaper.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { createRun, getRun, type RunRecord } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { fastLeaseEnv, killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { createSampleDatabase, createTestCatalog, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { processesMatching } from './support/processes.ts';
import { filesUnder } from './support/store.ts';
import { waitFor } from './support/wait.ts';

const LEASE_TTL_MS = Number(fastLeaseEnv.BACKSTOP_LEASE_TTL) * 1000;
const REAPER_MS = Number(fastLeaseEnv.BACKSTOP_REAPER_INTERVAL) * 1000;

describe('runs always terminate, truthfully (real processes, real signals)', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let other: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  let processes: CliProcess[] = [];
  let reaper: Reaper | undefined;
  let lock: { release(): Promise<void> } | undefined;

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(500);
    other = await createSampleDatabase(100);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-store-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, ...fastLeaseEnv };
    await createTarget(catalog.pool, { name: 'locked', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
    await createTarget(catalog.pool, { name: 'other', databaseUrl: other.url, storeUrl: `file://${storeDir}` });
  });

  afterEach(async () => {
    reaper?.stop();
    reaper = undefined;
    await killAll(processes);
    processes = [];
    await lock?.release();
    lock = undefined;
    // Orphaned pg_dump processes of killed runners die on their broken pipe once unblocked.
    await waitFor('no pg_dump left for this catalog', async () => (await processesMatching('pg_dump', source.name)).length === 0, 20_000);
  });

  after(async () => {
    await catalog.close();
    await source.drop();
    await other.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  const start = (args: string[], extra: Record<string, string> = {}) => {
    const cli = startCli(args, { ...env, ...extra });
    processes.push(cli);
    return cli;
  };

  const trigger = async (target: string): Promise<RunRecord> => {
    const { rows } = await catalog.pool.query<{ id: string }>('select id from backstop.targets where name = $1', [target]);
    return createRun(catalog.pool, { targetId: rows[0]!.id, trigger: 'test', runDeadlineMs: 3_600_000 });
  };

  /** Waits until the run is running and its pg_dump is connected (and blocked on our lock). */
  const waitUntilDumping = async (runId: string) => {
    await waitFor(`run ${runId} running`, async () => (await getRun(catalog.pool, runId)).status === 'running');
    await waitFor(`pg_dump of ${runId} connected`, async () => (await dumpSessions(runId)) > 0);
  };

  const status = async (runId: string) => (await getRun(catalog.pool, runId)).status;

  it('kill -9 of a worker mid-dump: timed_out within TTL + reaper interval + 1 s; the next run is processed; nothing listed', async () => {
    lock = await holdTableLock(source.url, 'orders');
    const stuck = await trigger('locked');
    const first = start(['worker', '--poll-interval', '0.2']);
    await waitUntilDumping(stuck.id);
    // The store opens its partial file as the pipeline starts, which on a loaded machine may
    // come a moment after pg_dump has connected.
    await waitFor('a partial file is being written', async () => (await filesUnder(storeDir)).some((file) => file.includes('.partial-')));

    const second = start(['worker', '--poll-interval', '0.2']);
    await waitFor('second worker up', () => second.stderr().includes('worker started'));

    first.child.kill('SIGKILL');
    const killedAt = performance.now();
    await first.exited;
    const next = await trigger('other');

    await waitFor('stuck run timed_out', async () => (await status(stuck.id)) === 'timed_out', 10_000, 20);
    const elapsed = performance.now() - killedAt;
    assert.ok(elapsed <= LEASE_TTL_MS + REAPER_MS + 1000, `timed_out after ${Math.round(elapsed)} ms`);

    const reaped = await getRun(catalog.pool, stuck.id);
    assert.equal(reaped.error?.code, 'LEASE_EXPIRED');
    assert.equal(reaped.artifact, null);

    await waitFor('next run succeeded', async () => (await status(next.id)) === 'succeeded');
    const nextRun = await getRun(catalog.pool, next.id);
    assert.notEqual(nextRun.claimedBy, reaped.claimedBy);

    const succeeded = await runCli(['runs', '--status', 'succeeded', '--json'], env);
    assert.ok(!JSON.parse(succeeded.stdout).some((run: RunRecord) => run.id === stuck.id));
    assert.ok(!(await filesUnder(storeDir)).some((file) => file.includes(stuck.id) && file.endsWith('manifest.json')));
    // The killed writer never removed its `.partial-*` file: garbage collection does.
    assert.ok(
      (await filesUnder(storeDir)).some((file) => file.includes(stuck.id) && file.includes('.partial-')),
      'the killed writer left its partial file',
    );
    const pruned = await runCli(['prune', '--target', 'locked', '--grace-period', '0', '--json'], env);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(
      (await filesUnder(storeDir)).filter((file) => file.includes(stuck.id)),
      [],
      'nothing of the killed run is left after garbage collection',
    );

    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to \`backstop run\` mid-dump: cancelled within 5 s, no pg_dump and no partial file left`, async () => {
      lock = await holdTableLock(source.url, 'orders');
      const run = await trigger('locked');
      const runner = start(['run', run.id]);
      await waitUntilDumping(run.id);
      assert.equal((await processesMatching('pg_dump', source.name)).length > 0, true, 'pg_dump is running');
      assert.ok((await filesUnder(storeDir)).some((file) => file.includes(run.id) && file.includes('.partial-')));

      runner.child.kill(signal);
      const signalledAt = performance.now();
      const exit = await runner.exited;
      assert.ok(performance.now() - signalledAt < 5000, 'exited within 5 s');
      assert.equal(exit.code, 130, runner.stderr());

      const ended = await getRun(catalog.pool, run.id);
      assert.equal(ended.status, 'cancelled');
      assert.equal(ended.error?.code, 'CANCELLED');
      assert.match(ended.error!.message, new RegExp(signal));
      assert.deepEqual(await processesMatching('pg_dump', source.name), []);
      assert.deepEqual(
        (await filesUnder(storeDir)).filter((file) => file.includes(run.id)),
        [],
      );
    });
  }

  it('`backstop cancel` on a running run: cancelled through the heartbeat path', async () => {
    lock = await holdTableLock(source.url, 'orders');
    const run = await trigger('locked');
    const runner = start(['run', run.id]);
    await waitUntilDumping(run.id);
    // Progress travels with the heartbeat.
    const progress = await waitFor('progress recorded', async () => (await getRun(catalog.pool, run.id)).progress);
    assert.equal(progress.phase, 'dumping');
    assert.equal(typeof progress.bytesDumped, 'number');

    const cancel = await runCli(['cancel', run.id], env);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, /being cancelled/);

    assert.equal((await runner.exited).code, 130);
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.status, 'cancelled');
    const kinds = (await listRunEvents(catalog.pool, run.id)).map((event) => `${event.kind}:${event.status}`);
    assert.deepEqual(kinds.slice(-2), ['cancel_requested:cancelling', 'finished:cancelled']);
    assert.deepEqual(
      (await filesUnder(storeDir)).filter((file) => file.includes(run.id)),
      [],
    );

    const again = await runCli(['cancel', run.id], env);
    assert.equal(again.code, 5);
    assert.match(again.stderr, /already finished as cancelled/);
  });

  it('a runner frozen past its lease is reaped; resumed, its heartbeat and finalize are refused (LEASE_LOST)', async () => {
    lock = await holdTableLock(source.url, 'orders');
    const run = await trigger('locked');
    const runner = start(['run', run.id]);
    await waitUntilDumping(run.id);

    runner.child.kill('SIGSTOP');
    reaper = startReaper(catalog.pool, REAPER_MS, pino({ level: 'silent' }));
    await waitFor('frozen run reaped', async () => (await status(run.id)) === 'timed_out', 10_000);
    const reaped = await getRun(catalog.pool, run.id);
    // Let the dump finish while the runner is frozen: on resume it holds a whole backup.
    await lock.release();
    lock = undefined;

    runner.child.kill('SIGCONT');
    const exit = await runner.exited;
    assert.equal(exit.code, 6, runner.stderr());
    assert.match(runner.stderr(), /LEASE_LOST/);

    const after = await getRun(catalog.pool, run.id);
    assert.equal(after.status, 'timed_out');
    assert.deepEqual(after, reaped);
    const kinds = (await listRunEvents(catalog.pool, run.id)).map((event) => event.kind);
    assert.equal(kinds.at(-1), 'reaped');
    assert.ok(!(await filesUnder(storeDir)).some((file) => file.includes(run.id) && file.endsWith('manifest.json')));
  });

  it('`backstop run` refuses an unknown, a running and a finished run, changing nothing', async () => {
    const unknown = await runCli(['run', '00000000-0000-4000-8000-000000000000'], env);
    assert.equal(unknown.code, 4);
    assert.match(unknown.stderr, /No run with id/);

    const malformed = await runCli(['run', 'not-a-run'], env);
    assert.equal(malformed.code, 4);
    assert.match(malformed.stderr, /not a run id/);

    lock = await holdTableLock(source.url, 'orders');
    const run = await trigger('locked');
    start(['run', run.id]);
    await waitUntilDumping(run.id);
    const before = await getRun(catalog.pool, run.id);
    const twice = await runCli(['run', run.id], env);
    assert.equal(twice.code, 5);
    assert.match(twice.stderr, /already being executed/);
    const afterRefusal = await getRun(catalog.pool, run.id);
    assert.equal(afterRefusal.attempt, before.attempt);
    assert.equal(afterRefusal.claimedBy, before.claimedBy);

    await lock.release();
    lock = undefined;
    await waitFor('run succeeded', async () => (await status(run.id)) === 'succeeded');
    const finished = await getRun(catalog.pool, run.id);
    const late = await runCli(['run', run.id], env);
    assert.equal(late.code, 5);
    assert.match(late.stderr, /already finished as succeeded/);
    assert.deepEqual(await getRun(catalog.pool, run.id), finished);
  });
});
