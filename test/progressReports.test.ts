import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../src/core/config.ts';
import type { ReportedProgress } from '../src/core/runProgress.ts';
import { listLiveProgress, reportRunProgress } from '../src/db/runProgress.ts';
import { claimRunById, finalizeRun, renewLease } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { executeRun } from '../src/runner/executeRun.ts';
import { startThreadedHeartbeat } from '../src/runner/heartbeatThread.ts';
import { openStore } from '../src/storage/openStore.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, adminUrl, createSampleDatabase, createTestCatalog, createTestDatabase, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { sampleProgress } from './support/progress.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * How progress reaches the catalog: between heartbeats on its own (fenced, leaving the lease
 * alone), with the outcome at the end (so the next backup estimates its total from it), for
 * drills, and for restores, which are no runs and keep their progress aside while they run.
 */
describe('progress in the catalog', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  const log = pino({ level: 'silent' });
  const config = {
    ...loadConfig({ BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres' }, process.cwd()),
    leaseTtlMs: 30_000,
    heartbeatIntervalMs: 10_000,
  };

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(3000);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-progress-reports-'));
  });
  after(async () => {
    await catalog.close();
    await source.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  const leaseOf = async (runId: string) =>
    (await adminQuery<{ heartbeat_at: string; lease_expires_at: string }>('select heartbeat_at, lease_expires_at from backstop.runs where id = $1', [runId], catalog.url))[0]!;

  it("a runner's heartbeat thread writes changed progress between renewals, leaving the lease alone, and only while it holds the run", async () => {
    const target = await createTarget(catalog.pool, { name: 'beats', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
    const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
    const claimed = await claimRunById(catalog.pool, run.id, { leaseTtlMs: 60_000, claimedBy: 'test' });
    const lease = await leaseOf(run.id);
    let current: ReportedProgress = sampleProgress({ bytesDone: 1, bytesDumped: 1 });
    const heartbeat = startThreadedHeartbeat({
      channel: { kind: 'sql', connectionString: catalog.url },
      renewLease: (input) => renewLease(catalog.pool, input),
      reportProgress: (input) => reportRunProgress(catalog.pool, input),
      runId: run.id,
      leaseId: claimed.leaseId,
      leaseTtlMs: 60_000,
      // No renewal within this test: whatever progress arrives came on its own.
      intervalMs: 50_000,
      progressIntervalMs: 200,
      log,
      progress: () => current,
      onLeaseLost: () => {},
      onCancelRequested: () => {},
    });
    try {
      await waitFor('the first progress', async () => (await getRun(catalog.pool, run.id)).progress?.bytesDone === 1);
      current = sampleProgress({ bytesDone: 2, bytesDumped: 2 });
      await waitFor('the next progress', async () => (await getRun(catalog.pool, run.id)).progress?.bytesDone === 2);
      const live = (await listLiveProgress(catalog.pool)).find((item) => item.runId === run.id);
      assert.equal((live?.progress as ReportedProgress | undefined)?.bytesDone, 2, 'the feed of all runs finds it');
      const after = await leaseOf(run.id);
      assert.equal(String(after.heartbeat_at), String(lease.heartbeat_at), 'no heartbeat carried it');
      assert.equal(String(after.lease_expires_at), String(lease.lease_expires_at), 'the lease was left alone');
    } finally {
      heartbeat.stop();
    }
    // A heartbeat and a report travel separately and may land out of order: the older never undoes the newer.
    assert.equal(await reportRunProgress(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, progress: sampleProgress({ bytesDone: 9, elapsedMs: 9_000 }) }), true);
    await renewLease(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, leaseTtlMs: 60_000, progress: sampleProgress({ bytesDone: 8, elapsedMs: 8_000 }) });
    assert.equal(await reportRunProgress(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, progress: sampleProgress({ bytesDone: 7, elapsedMs: 7_000 }) }), true);
    assert.equal((await getRun(catalog.pool, run.id)).progress?.bytesDone, 9, 'a late, older report changed nothing');
    current = sampleProgress({ bytesDone: 2, bytesDumped: 2, elapsedMs: 10_000 });
    await reportRunProgress(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, progress: current });
    await finalizeRun(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, outcome: 'failed', error: { code: 'DUMP_FAILED', message: 'test' } });
    assert.equal(await reportRunProgress(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, progress: sampleProgress({ bytesDone: 3 }) }), false);
    assert.equal((await getRun(catalog.pool, run.id)).progress?.bytesDone, 2, 'a finished run keeps how its work ended');
  });

  it('a backup ends with its final figures, the next one is told against them, and a drill reports its restore', async () => {
    const target = await createTarget(catalog.pool, { name: 'estimated', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
    const backup = async () => {
      const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
      const claimed = await claimRunById(catalog.pool, run.id, { leaseTtlMs: config.leaseTtlMs, claimedBy: 'test' });
      const seen: ReportedProgress[] = [];
      const finished = await executeRun({ db: catalog.pool, config, log }, claimed, { onProgress: (next) => seen.push(next) }).result;
      assert.equal(finished?.status, 'succeeded');
      const store = await openStore(`file://${storeDir}`);
      try {
        const { manifest } = await readManifest(store, finished!.artifact!.prefix);
        return { run: finished!, seen, plainBytes: manifest.files[0]!.uncompressedSize };
      } finally {
        await store.close();
      }
    };

    const first = await backup();
    assert.equal(first.run.progress?.operation, 'backup');
    assert.equal(first.run.progress?.phase, 'done');
    assert.equal(first.run.progress?.bytesDone, first.plainBytes, 'the final count is the dump, exactly');
    assert.equal(first.run.progress?.percent, 100);
    assert.ok(
      first.seen.some((progress) => progress.phase === 'dumping' && progress.totalBasis === 'database-size'),
      'a first backup is told against the database size',
    );

    const second = await backup();
    const dumping = second.seen.filter((progress) => progress.phase === 'dumping' && progress.totalBasis === 'previous-backup');
    assert.ok(dumping.length > 0, JSON.stringify(second.seen));
    assert.ok(
      dumping.every((progress) => progress.totalBytes === first.plainBytes),
      'against the previous backup',
    );

    const drill = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000, kind: 'verify', subjectRunId: second.run.id });
    const claimed = await claimRunById(catalog.pool, drill.id, { leaseTtlMs: config.leaseTtlMs, claimedBy: 'test' });
    const seen: ReportedProgress[] = [];
    const finished = await executeRun({ db: catalog.pool, config, log }, claimed, { onProgress: (next) => seen.push(next) }).result;
    assert.equal(finished?.status, 'succeeded', JSON.stringify(finished?.error));
    assert.ok(
      seen.some((progress) => progress.operation === 'drill' && progress.phase === 'restoring'),
      JSON.stringify(seen),
    );
    assert.deepEqual(
      {
        operation: finished!.progress?.operation,
        phase: finished!.progress?.phase,
        bytesDone: finished!.progress?.bytesDone,
        totalBasis: finished!.progress?.totalBasis,
        percent: finished!.progress?.percent,
      },
      { operation: 'drill', phase: 'done', bytesDone: second.plainBytes, totalBasis: 'manifest', percent: 100 },
    );
  });

  it('without a terminal, the CLI prints plain progress lines (no bar, no control character); with --json, none', async () => {
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_LOG_LEVEL: 'error' };
    const plain = await runCli(['backup', source.url, '--target', 'plain'], env);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stderr, /^dumping [\d.]+ [KMG]?i?B/m);
    assert.match(plain.stderr, /^writing the manifest /m);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: a redrawn bar is recognised by its escapes
    assert.doesNotMatch(plain.stderr, /[\r\x1b█░]/, 'a pipe gets lines, never a redrawn bar');
    assert.match(plain.stdout, /succeeded/);
    const json = await runCli(['backup', source.url, '--target', 'plain', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    assert.doesNotMatch(json.stderr, /dumping/);
    assert.equal(JSON.parse(json.stdout).progress.phase, 'done');
  });

  describe('a restore through the API', () => {
    let api: TestServer;
    let destination: TestDatabase;
    before(async () => {
      api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_STORE: `file://${storeDir}` } });
      destination = await createTestDatabase('restored');
    });
    after(async () => {
      await api.close();
      await destination.drop();
    });

    it('shows its progress on the backup run while it runs, kept fresh while pg_restore waits, and gone once it ended', async () => {
      const backup = (await api.request('GET', '/api/v1/runs?target=estimated&status=succeeded&kind=backup&limit=1')).json.items[0];
      assert.ok(backup, 'a succeeded backup of the previous test');
      // pg_restore --clean drops `orders` first, and waits for this lock for as long as the test holds it.
      await adminQuery('create table orders (id int)', [], destination.url);
      const lock = await holdTableLock(destination.url, 'orders');
      let released = false;
      try {
        const started = await api.request('POST', `/api/v1/runs/${backup.id}/restore`, { body: { databaseUrl: destination.url, clean: true, privilegedRole: 'postgres' } });
        assert.equal(started.status, 202, started.text);
        const stamps = new Set<string>();
        const waiting = await waitFor(
          'the restore waiting on the lock, seen three times',
          async () => {
            const progress = (await api.request('GET', `/api/v1/runs/${backup.id}`)).json.progress;
            if (progress?.operation === 'restore' && progress.phase === 'restoring') stamps.add(progress.updatedAt);
            return stamps.size >= 3 ? progress : null;
          },
          30_000,
        );
        assert.equal(waiting.totalBasis, 'manifest');
        assert.ok(waiting.totalBytes > 0);
        assert.equal(waiting.bytesStored, (await getRun(catalog.pool, backup.id)).artifact!.files[0]!.size, 'the stored file was read and checked first');
        const listed = (await api.request('GET', '/api/v1/runs?target=estimated&status=succeeded&kind=backup&limit=1')).json.items[0];
        assert.equal(listed.progress.operation, 'restore', 'the list shows it too');
        const live = (await listLiveProgress(catalog.pool)).filter((item) => item.runId === backup.id);
        assert.deepEqual(
          live.map((item) => (item.progress as ReportedProgress).operation),
          ['restore'],
          'the feed of all runs finds it, once',
        );
        await lock.release();
        released = true;
        await waitFor('the restore ended', async () => {
          const events = (await api.request('GET', `/api/v1/runs/${backup.id}/events`)).json.items as Array<{ kind: string }>;
          return events.some((event) => event.kind === 'restored' || event.kind === 'restore_failed') && events;
        });
        const after = (await api.request('GET', `/api/v1/runs/${backup.id}`)).json.progress;
        assert.equal(after.operation, 'backup', 'the backup shows how it ended again');
        assert.equal((await adminQuery('select 1 from backstop.restore_progress', [], catalog.url)).length, 0, 'nothing left behind');
      } finally {
        if (!released) await lock.release();
      }
    });
  });
});
