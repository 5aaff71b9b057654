import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compareLsn } from '../src/core/changeSegment.ts';
import { killAll, startCli, type CliProcess } from './support/cli.ts';
import { makeContinuousTarget, slotState } from './support/continuous.ts';
import { createWorkloadDatabase, expectEveryCommitStored, expectLatestRestoreEqualsSource, journalId, startWorkload, takeBaseBackup } from './support/continuousWorkload.ts';
import { adminQuery, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startS3rver, type S3rverHandle } from './support/s3rver.ts';
import { waitFor } from './support/wait.ts';

describe('streamers under kill -9', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let s3: S3rverHandle | undefined;
  let outageSource: TestDatabase | undefined;
  const processes: CliProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createWorkloadDatabase();
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-crash-'));
  });
  after(async () => {
    await killAll(processes);
    await adminQuery("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'backstop_%' and not active", [], source.url).catch(() => {});
    await catalog.close();
    await source.drop();
    await s3?.stop();
    await outageSource?.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('a streamer killed mid-workload is replaced after its lease: every committed transaction stored and restored, none twice, none missing', { timeout: 180_000 }, async () => {
    const storeUrl = `file://${storeDir}`;
    const { target, slot } = await makeContinuousTarget(catalog.pool, { name: 'cont-kill', sourceUrl: source.url, storeUrl, tables: ['parent', 'child', 'journal'] });
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_LEASE_TTL: '2', BACKSTOP_REAPER_INTERVAL: '0.5', BACKSTOP_LOG_LEVEL: 'info' };
    const first = startCli(['stream', 'cont-kill', '--poll-interval', '0.2'], env);
    processes.push(first);
    await waitFor('the first streamer to hold the slot', async () => (await slotState(source.url, slot))?.active, 30_000);
    const firstGeneration = (await catalog.pool.query<{ generation: number }>('select generation from backstop.continuous_streams where target_id = $1', [target.id])).rows[0]!
      .generation;
    await takeBaseBackup(source.url, 'cont-kill', env);
    const second = startCli(['stream', 'cont-kill', '--poll-interval', '0.2'], env);
    processes.push(second);

    const workload = startWorkload(source.url);
    try {
      await waitFor('a segment of the first streamer', async () => {
        const { rows } = await catalog.pool.query('select 1 from backstop.change_segments where target_id = $1 and generation = $2', [target.id, firstGeneration]);
        return rows.length >= 2;
      });
      first.child.kill('SIGKILL');
      await first.exited;
      const committedAtKill = workload.committed();
      await waitFor(
        'the second streamer to store transactions committed after the kill',
        async () => {
          const { rows } = await catalog.pool.query<{ generation: number }>('select generation from backstop.change_segments where target_id = $1 and generation > $2', [
            target.id,
            firstGeneration,
          ]);
          return rows.length >= 2;
        },
        30_000,
      );
      assert.ok(workload.committed() > committedAtKill, 'the workload went on while the streamer was down');
    } finally {
      await workload.stop();
    }
    const { segments } = await expectEveryCommitStored(source.url, storeUrl, target.name, slot);
    const generations = new Set(segments.map((segment) => segment.manifest.generation));
    assert.ok(generations.size >= 2, 'two streamers wrote segments');
    // The archive has no hole: sorted by start, each segment begins at or before the end of what came before.
    const sorted = [...segments].sort((a, b) => compareLsn(a.manifest.startLsn, b.manifest.startLsn) || compareLsn(a.manifest.endLsn, b.manifest.endLsn));
    let reached = sorted[0]!.manifest.startLsn;
    for (const segment of sorted) {
      assert.ok(compareLsn(segment.manifest.startLsn, reached) <= 0, `${segment.key} leaves a gap after ${reached}`);
      if (compareLsn(segment.manifest.endLsn, reached) > 0) reached = segment.manifest.endLsn;
    }

    // SIGTERM: what was received whole is stored and confirmed, then the streamer exits 0.
    second.child.kill('SIGTERM');
    const exit = await second.exited;
    assert.equal(exit.code, 0, second.stderr());
    const [stream] = (
      await catalog.pool.query<{ confirmed: string; lease_owner: string | null }>(
        'select confirmed_lsn::text as confirmed, lease_owner from backstop.continuous_streams where target_id = $1',
        [target.id],
      )
    ).rows;
    const slotNow = await slotState(source.url, slot);
    assert.equal(slotNow?.active, false);
    assert.ok(compareLsn(slotNow!.confirmed, stream!.confirmed) >= 0, 'the slot was told everything stored');
    assert.equal(stream!.lease_owner, null, 'a clean stop gives the lease up');
    await expectLatestRestoreEqualsSource(source.url, 'cont-kill', env);
  });

  it('a store outage: nothing is confirmed to the slot while segments cannot be stored, and everything arrives (and restores) once the store is back', {
    timeout: 180_000,
  }, async () => {
    s3 = await startS3rver();
    // This process reads the segments back from s3rver too.
    Object.assign(process.env, s3.env);
    outageSource = await createWorkloadDatabase();
    const storeUrl = s3.storeUrl('outage');
    const { target, slot } = await makeContinuousTarget(catalog.pool, { name: 'cont-outage', sourceUrl: outageSource.url, storeUrl, tables: ['parent', 'child', 'journal'] });
    const env = { ...s3.env, BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_LEASE_TTL: '2', BACKSTOP_REAPER_INTERVAL: '0.5', BACKSTOP_LOG_LEVEL: 'info' };
    const streamer = startCli(['stream', 'cont-outage', '--poll-interval', '0.2'], env);
    processes.push(streamer);
    await waitFor('the streamer to hold the slot', async () => (await slotState(outageSource!.url, slot))?.active, 30_000);
    await adminQuery("insert into journal (op) values ('before the outage')", [], outageSource.url);
    await waitFor('a first segment', async () => (await catalog.pool.query('select 1 from backstop.change_segments where target_id = $1', [target.id])).rows.length > 0);
    await takeBaseBackup(outageSource.url, 'cont-outage', env);

    await s3.halt();
    const segmentsBefore = (await catalog.pool.query('select 1 from backstop.change_segments where target_id = $1', [target.id])).rows.length;
    const workload = startWorkload(outageSource.url);
    const confirmedDuringOutage: string[] = [];
    try {
      const failuresBefore = streamer.stderr().split('streaming session ended').length;
      // Two failed sessions: the streamer tried to store, failed, started again from the stored position, and failed again.
      await waitFor(
        'the streamer to fail storing twice',
        async () => {
          confirmedDuringOutage.push((await slotState(outageSource!.url, slot))!.confirmed);
          return streamer.stderr().split('streaming session ended').length >= failuresBefore + 2;
        },
        60_000,
        100,
      );
      confirmedDuringOutage.push((await slotState(outageSource.url, slot))!.confirmed);
      assert.equal((await catalog.pool.query('select 1 from backstop.change_segments where target_id = $1', [target.id])).rows.length, segmentsBefore);
      await s3.restart();
    } finally {
      await workload.stop();
    }
    const { unique, committed } = await expectEveryCommitStored(outageSource.url, storeUrl, target.name, slot);
    // The first transaction of the outage: the slot was never told anything at or past it while the store was down.
    const firstOfOutage = unique.find((transaction) => journalId(transaction) === committed[1])!;
    for (const confirmed of confirmedDuringOutage) assert.ok(compareLsn(confirmed, firstOfOutage.lsn) <= 0, `confirmed ${confirmed} during the outage, past ${firstOfOutage.lsn}`);
    streamer.child.kill('SIGTERM');
    assert.equal((await streamer.exited).code, 0, streamer.stderr());
    await expectLatestRestoreEqualsSource(outageSource.url, 'cont-outage', env);
  });
});
