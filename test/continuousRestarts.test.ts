import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { compareLsn } from '../src/core/changeSegment.ts';
import { createDatabaseIfMissing } from '../src/db/createDatabaseIfMissing.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome, type EmbeddedInstance } from '../src/db/embeddedPostgres.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { killAll, startCli, type CliProcess } from './support/cli.ts';
import { makeContinuousTarget, slotState } from './support/continuous.ts';
import {
  createWorkloadDatabase,
  expectConfirmsRecorded,
  expectEveryCommitStored,
  expectLatestRestoreEqualsSource,
  startWorkload,
  takeBaseBackup,
  workloadTables,
  type ConfirmSample,
} from './support/continuousWorkload.ts';
import { adminQuery, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

/**
 * Continuous backup while the source or the catalog restarts under a workload. Each restarted
 * server is one of the test's own (restarting the shared test server would take every other
 * test file down with it). The check is the source's journal: the union of every stored
 * segment, each commit LSN once, is exactly the committed transactions; and the slot is never
 * told of a transaction before the catalog has recorded it.
 */

const TEST_TIMEOUT = { timeout: 240_000 };

async function recordedLsn(pool: Pool, targetId: string): Promise<string | null> {
  const { rows } = await pool.query<{ confirmed: string | null }>('select confirmed_lsn::text as confirmed from backstop.continuous_streams where target_id = $1', [targetId]);
  return rows[0]?.confirmed ?? null;
}

async function segmentCount(pool: Pool, targetId: string, generation?: number): Promise<number> {
  const { rows } = await pool.query<{ count: number }>('select count(*)::int as count from backstop.change_segments where target_id = $1 and ($2::int is null or generation = $2)', [
    targetId,
    generation ?? null,
  ]);
  return rows[0]!.count;
}

async function generationOf(pool: Pool, targetId: string): Promise<number> {
  return (await pool.query<{ generation: number }>('select generation from backstop.continuous_streams where target_id = $1', [targetId])).rows[0]!.generation;
}

/** Every sampler started, stopped by the tests' clean-up too: a failed test must not leave one polling. */
const samplers: Array<{ stop(): Promise<ConfirmSample[]> }> = [];

/** Samples the slot's confirmed position and then the catalog's recorded one until `stop`; a sample fails quietly while either server is down. */
function startSampling(sourceUrl: string, slot: string, recorded: () => Promise<string | null>) {
  const samples: ConfirmSample[] = [];
  let stopping = false;
  const done = (async () => {
    while (!stopping) {
      try {
        const slotNow = await slotState(sourceUrl, slot);
        const recordedNow = await recorded();
        if (slotNow && recordedNow) samples.push({ slotConfirmed: slotNow.confirmed, recorded: recordedNow });
      } catch {
        // The server is restarting: the next sample is taken once it is back.
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const sampler = {
    stop: async () => {
      stopping = true;
      await done;
      return samples;
    },
  };
  samplers.push(sampler);
  return sampler;
}

describe('continuous streaming while its source restarts', () => {
  let home: string;
  let server: EmbeddedInstance;
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  const processes: CliProcess[] = [];

  before(async () => {
    home = await temporaryHome('backstop-cont-source-');
    server = await ensureEmbeddedPostgres(home);
    assert.equal((await adminQuery<{ level: string }>("select current_setting('wal_level') as level", [], server.url()))[0]!.level, 'logical');
    source = await createWorkloadDatabase(server.url());
    catalog = await createTestCatalog();
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-cont-source-store-'));
  });

  after(async () => {
    await Promise.all(samplers.map((sampler) => sampler.stop()));
    await killAll(processes);
    await catalog?.close();
    if (home) {
      await stopEmbeddedPostgres(home, { mode: 'immediate' }).catch(() => {});
      await fs.rm(home, { recursive: true, force: true });
    }
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  const restartSource = async (mode: 'fast' | 'immediate') => {
    assert.equal(await stopEmbeddedPostgres(home, { mode }), true, `the source stopped (${mode})`);
    const restarted = await ensureEmbeddedPostgres(home);
    assert.equal(restarted.port, server.port, 'the source came back on the same port');
  };

  it('fast and immediate restarts mid-workload: the streamer reconnects; every committed transaction stored once and restored, none confirmed unrecorded', TEST_TIMEOUT, async () => {
    const storeUrl = `file://${storeDir}`;
    const { target, slot } = await makeContinuousTarget(catalog.pool, { name: 'cont-source-restart', sourceUrl: source.url, storeUrl, tables: workloadTables });
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_LEASE_TTL: '3', BACKSTOP_REAPER_INTERVAL: '0.5' };
    const streamer = startCli(['stream', target.name, '--poll-interval', '0.2'], env);
    processes.push(streamer);
    await waitFor('the streamer to hold the slot', async () => (await slotState(source.url, slot))?.active, 30_000);
    await takeBaseBackup(source.url, target.name, env);
    await adminQuery("insert into journal (op) values ('before the restarts')", [], source.url);
    await waitFor('a first segment', async () => (await segmentCount(catalog.pool, target.id)) > 0, 30_000);
    const generation = await generationOf(catalog.pool, target.id);

    const sampling = startSampling(source.url, slot, () => recordedLsn(catalog.pool, target.id));
    const workload = startWorkload(source.url);
    try {
      for (const mode of ['fast', 'immediate'] as const) {
        const segmentsBefore = await segmentCount(catalog.pool, target.id);
        await waitFor(`segments of the workload before the ${mode} restart`, async () => (await segmentCount(catalog.pool, target.id)) >= segmentsBefore + 2, 30_000);
        const pidBefore = (await slotState(source.url, slot))!.activePid;
        const failuresBefore = workload.failures();
        await restartSource(mode);
        const journalAtRestart = (await adminQuery<{ id: string }>('select max(id)::text as id from journal', [], source.url))[0]!.id;
        await waitFor(
          `the streamer to stream the slot again after the ${mode} restart`,
          async () => {
            const state = await slotState(source.url, slot);
            return state?.active && state.activePid !== pidBefore;
          },
          60_000,
        );
        // Transactions committed after the restart reach the catalog: the streamer goes on.
        const walAfterRestart = await waitFor(`a commit after the ${mode} restart`, async () => {
          const rows = await adminQuery<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn from journal where id > $1 limit 1', [journalAtRestart], source.url);
          return rows[0]?.lsn;
        });
        await waitFor(
          `the catalog to record past ${walAfterRestart}, after the ${mode} restart`,
          async () => {
            const recorded = await recordedLsn(catalog.pool, target.id);
            return recorded !== null && compareLsn(recorded, walAfterRestart) > 0;
          },
          60_000,
        );
        assert.ok(workload.failures() > failuresBefore, `the workload lost its connection in the ${mode} restart`);
      }
    } finally {
      await workload.stop();
    }
    const { unique } = await expectEveryCommitStored(source.url, storeUrl, target.name, slot);
    expectConfirmsRecorded(await sampling.stop(), unique);
    assert.equal(streamer.child.exitCode, null, `the streamer is still running: ${streamer.stderr().slice(-2000)}`);
    assert.equal(await generationOf(catalog.pool, target.id), generation, 'the same streamer, never replaced');
    assert.match(streamer.stderr(), /streaming session ended/);

    streamer.child.kill('SIGTERM');
    assert.equal((await streamer.exited).code, 0, streamer.stderr().slice(-4000));
    const slotNow = await slotState(source.url, slot);
    assert.ok(slotNow && !slotNow.active);
    await expectLatestRestoreEqualsSource(source.url, target.name, env);
  });
});

describe('continuous streaming while its catalog restarts', () => {
  const CATALOG_DATABASE = 'backstop';
  let home: string;
  let server: EmbeddedInstance;
  let pool: Pool;
  let storeDir: string;
  const sources: TestDatabase[] = [];
  let processes: CliProcess[] = [];

  before(async () => {
    home = await temporaryHome('backstop-cont-catalog-');
    server = await ensureEmbeddedPostgres(home);
    await createDatabaseIfMissing(server.url(), CATALOG_DATABASE);
    pool = createPool(server.url(CATALOG_DATABASE));
    await migrate(pool);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-cont-catalog-store-'));
  });

  beforeEach(async () => {
    // A test that failed while the catalog was down must not take the next one with it.
    assert.equal((await ensureEmbeddedPostgres(home)).port, server.port);
  });

  afterEach(async () => {
    await Promise.all(samplers.map((sampler) => sampler.stop()));
    await killAll(processes);
    processes = [];
  });

  after(async () => {
    await pool?.end().catch(() => {});
    if (home) {
      await stopEmbeddedPostgres(home, { mode: 'immediate' }).catch(() => {});
      await fs.rm(home, { recursive: true, force: true });
    }
    for (const source of sources) {
      // A database with a logical slot cannot be dropped: the slots go first.
      await adminQuery('select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active', [source.name]).catch(() => {});
      await source.drop();
    }
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  const stopCatalog = async () => assert.equal(await stopEmbeddedPostgres(home, { mode: 'fast' }), true, 'the catalog stopped');
  const startCatalog = async () => assert.equal((await ensureEmbeddedPostgres(home)).port, server.port, 'the catalog came back on the same port');

  const setUp = async (name: string, leaseTtlSeconds: number) => {
    const source = await createWorkloadDatabase();
    sources.push(source);
    const storeUrl = `file://${storeDir}`;
    const { target, slot } = await makeContinuousTarget(pool, { name, sourceUrl: source.url, storeUrl, tables: workloadTables });
    const env = { BACKSTOP_DATABASE_URL: server.url(CATALOG_DATABASE), BACKSTOP_LEASE_TTL: String(leaseTtlSeconds), BACKSTOP_REAPER_INTERVAL: '0.5' };
    const streamer = startCli(['stream', name, '--poll-interval', '0.2'], env);
    processes.push(streamer);
    await waitFor('the streamer to hold the slot', async () => (await slotState(source.url, slot))?.active, 30_000);
    await takeBaseBackup(source.url, name, env);
    await adminQuery("insert into journal (op) values ('before the outage')", [], source.url);
    await waitFor('a first segment', async () => (await segmentCount(pool, target.id)) > 0, 30_000);
    return { source, storeUrl, target, slot, streamer, env, generation: await generationOf(pool, target.id) };
  };

  it('a restart within the lease: the same streamer goes on; every committed transaction stored once and restored, none confirmed unrecorded', TEST_TIMEOUT, async () => {
    const { source, storeUrl, target, slot, streamer, env, generation } = await setUp('cont-catalog-short', 15);
    // While the catalog is down its last recorded position stands in for it.
    let recordedBeforeOutage: string | null = null;
    let catalogDown = false;
    const sampling = startSampling(source.url, slot, async () => (catalogDown ? recordedBeforeOutage : recordedLsn(pool, target.id)));
    const workload = startWorkload(source.url);
    try {
      await waitFor('segments of the workload', async () => (await segmentCount(pool, target.id)) >= 3, 30_000);
      const failuresBefore = streamer.stderr().split('streaming session ended').length;
      catalogDown = true;
      recordedBeforeOutage = await recordedLsn(pool, target.id);
      const segmentsBefore = await segmentCount(pool, target.id);
      await stopCatalog();
      // A segment could not be recorded: the session ended without confirming it.
      await waitFor('a session to end on the catalog', () => streamer.stderr().split('streaming session ended').length > failuresBefore, 8_000);
      await startCatalog();
      catalogDown = false;
      await waitFor('segments recorded after the restart', async () => (await segmentCount(pool, target.id)) >= segmentsBefore + 2, 30_000);
    } finally {
      catalogDown = false;
      await workload.stop();
    }
    const { unique } = await expectEveryCommitStored(source.url, storeUrl, target.name, slot);
    expectConfirmsRecorded(await sampling.stop(), unique);
    assert.equal(await generationOf(pool, target.id), generation, 'the lease outlived the outage: nobody took over');
    assert.doesNotMatch(streamer.stderr(), /stream lease lost/);
    streamer.child.kill('SIGTERM');
    assert.equal((await streamer.exited).code, 0, streamer.stderr().slice(-4000));
    await expectLatestRestoreEqualsSource(source.url, target.name, env);
  });

  it(
    'down longer than the lease: the streamer stops without confirming, a new generation takes over; nothing is recorded by the old one, every commit stored once and restored',
    TEST_TIMEOUT,
    async () => {
      const { source, storeUrl, target, slot, streamer, env, generation } = await setUp('cont-catalog-long', 2);
      let recordedBeforeOutage: string | null = null;
      let catalogDown = false;
      const sampling = startSampling(source.url, slot, async () => (catalogDown ? recordedBeforeOutage : recordedLsn(pool, target.id)));
      const workload = startWorkload(source.url);
      let oldSegments = 0;
      try {
        await waitFor('segments of the workload', async () => (await segmentCount(pool, target.id)) >= 3, 30_000);
        catalogDown = true;
        recordedBeforeOutage = await recordedLsn(pool, target.id);
        oldSegments = await segmentCount(pool, target.id, generation);
        await stopCatalog();
        // The catalog stays down until the streamer has given its lease up for lost.
        await waitFor('the streamer to stop streaming on its lost lease', () => streamer.stderr().includes('stream lease lost'), 30_000);
        await waitFor('the slot to be free', async () => (await slotState(source.url, slot))?.active === false, 20_000);
        await startCatalog();
        catalogDown = false;
        // The same process claims the stream again once the catalog answers: a new generation.
        await waitFor('a new generation to record segments', async () => (await segmentCount(pool, target.id)) - (await segmentCount(pool, target.id, generation)) >= 2, 60_000);
      } finally {
        catalogDown = false;
        await workload.stop();
      }
      const { unique } = await expectEveryCommitStored(source.url, storeUrl, target.name, slot);
      expectConfirmsRecorded(await sampling.stop(), unique);
      assert.ok((await generationOf(pool, target.id)) > generation, 'the stream was claimed again');
      assert.equal(await segmentCount(pool, target.id, generation), oldSegments, 'nothing recorded by the streamer that lost its lease');
      streamer.child.kill('SIGTERM');
      assert.equal((await streamer.exited).code, 0, streamer.stderr().slice(-4000));
      await expectLatestRestoreEqualsSource(source.url, target.name, env);
    },
  );
});
