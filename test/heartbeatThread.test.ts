import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { claimRunById, reapRuns, renewLease } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { loadConfig } from '../src/core/config.ts';
import { executeRun } from '../src/runner/executeRun.ts';
import { startThreadedHeartbeat } from '../src/runner/heartbeatThread.ts';
import { adminQuery, createSampleDatabase, createTestCatalog, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

/** Blocks this thread's event loop, as CPU-heavy work would. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

const heartbeatSessions = async (runId: string) =>
  Number((await adminQuery<{ n: string }>(`select count(*) as n from pg_stat_activity where application_name = $1`, [`backstop-heartbeat:${runId}`]))[0]!.n);

describe('heartbeats that blocking work cannot starve', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(100);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-hb-'));
  });
  after(async () => {
    await catalog.close();
    await source.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('a runner whose main thread is blocked for three leases keeps its run, then finishes it', async () => {
    const target = await createTarget(catalog.pool, { name: 'busy', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
    const queued = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
    const config = { ...loadConfig({}, process.cwd()), leaseTtlMs: 1000, heartbeatIntervalMs: 250 };
    const claimed = await claimRunById(catalog.pool, queued.id, { leaseTtlMs: config.leaseTtlMs, claimedBy: 'test' });
    const lock = await holdTableLock(source.url, 'orders');
    let released = false;
    try {
      const execution = executeRun({ db: catalog.pool, config, log: pino({ level: 'silent' }) }, claimed);
      await waitFor('dump started', async () => (await dumpSessions(claimed.id)) > 0);
      await waitFor('heartbeat thread connected', async () => (await heartbeatSessions(claimed.id)) > 0);
      blockFor(3 * config.leaseTtlMs);
      assert.deepEqual(await reapRuns(catalog.pool), [], 'nothing to reap: the thread kept the lease');
      assert.equal((await getRun(catalog.pool, claimed.id)).status, 'running');
      await lock.release();
      released = true;
      const finished = await execution.result;
      assert.equal(finished?.status, 'succeeded');
      await waitFor('heartbeat connection closed', async () => (await heartbeatSessions(claimed.id)) === 0);
    } finally {
      if (!released) await lock.release();
    }
  });

  it('a main thread stuck past the stall limit loses its lease: the thread stops renewing', async () => {
    const target = await createTarget(catalog.pool, { name: 'stuck', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
    const queued = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
    const claimed = await claimRunById(catalog.pool, queued.id, { leaseTtlMs: 1000, claimedBy: 'test' });
    const lost: string[] = [];
    const heartbeat = startThreadedHeartbeat({
      channel: { kind: 'sql', connectionString: catalog.url },
      renewLease: (input) => renewLease(catalog.pool, input),
      runId: claimed.id,
      leaseId: claimed.leaseId,
      leaseTtlMs: 1000,
      intervalMs: 200,
      stallLimitMs: 1500,
      log: pino({ level: 'silent' }),
      progress: () => null,
      onLeaseLost: (reason) => lost.push(reason),
      onCancelRequested: () => {},
    });
    try {
      await waitFor('heartbeat thread connected', async () => (await heartbeatSessions(claimed.id)) > 0);
      blockFor(3500);
      await waitFor('lease lost reported', () => lost.length > 0, 10_000);
      assert.match(lost[0]!, /main thread made no progress/);
      const reaped = await reapRuns(catalog.pool);
      assert.deepEqual(
        reaped.map((run) => [run.id, run.status]),
        [[claimed.id, 'timed_out']],
      );
    } finally {
      heartbeat.stop();
    }
  });
});
