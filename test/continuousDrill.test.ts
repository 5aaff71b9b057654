import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { SegmentLine } from '../src/core/changeSegment.ts';
import { listStoredSegments, segmentDataKey } from '../src/continuous/segmentFiles.ts';
import { openStore } from '../src/storage/openStore.ts';
import { fastLeaseEnv, killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { adminQuery, adminUrl, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { writeSegment } from './support/segments.ts';
import { waitFor } from './support/wait.ts';

/**
 * Drills of a continuous target's base backup, with a real streamer, real base backups and a
 * real scratch database: carried on to the next base's LSN, the replay is compared with what
 * that base's own dump recorded from the source — the one check that does not come from the
 * change archive itself.
 */

const TIMEOUT = { timeout: 300_000 };

describe('drills of a continuous base, checked against the next base', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let workDir: string;
  let env: Record<string, string>;
  const processes: CliProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('drillsrc');
    await adminQuery(
      `create table items (id int primary key, n int not null, note text);
       create table parts (id serial primary key, item int not null references items, qty int not null);
       insert into items select g, g, 'seed' from generate_series(1, 20) g;`,
      [],
      source.url,
    );
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-drill-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, ...fastLeaseEnv };
  });

  after(async () => {
    await killAll(processes);
    await adminQuery("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'backstop_%' and not active", [], source.url).catch(() => {});
    await catalog?.close();
    await source?.drop();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const json = async (args: string[], extra: Record<string, string> = {}) => {
    const result = await runCli([...args, '--json'], { ...env, ...extra });
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout);
  };
  const verification = async (runId: string) =>
    (
      await catalog.pool.query<{
        verification: {
          status: string;
          point: { transactions: number; laterBase: { runId: string; lsn: string; tables: number; checksums: boolean; transactions: number } | null } | null;
          error: { code: string; message: string } | null;
        };
      }>('select verification from backstop.runs where id = $1', [runId])
    ).rows[0]!.verification;

  it('a lost change the segments cannot show is found where the next base was taken', TIMEOUT, async () => {
    const storeDir = path.join(workDir, 'store');
    const added = await json(['target', 'add', 'drilled', '--database-url', source.url, '--store', `file://${storeDir}`, '--continuous', '--segment-seconds', '1', '--checksums']);
    const slot: string = added.continuous.slot;
    const first = await json(['run', added.baseRunId]);
    assert.equal(first.status, 'succeeded', JSON.stringify(first.error));
    const { rows: firstRows } = await catalog.pool.query<{ prefix: string }>("select artifact->>'prefix' as prefix from backstop.runs where id = $1", [first.id]);
    const firstManifest = JSON.parse(await fs.readFile(path.join(storeDir, firstRows[0]!.prefix, 'manifest.json'), 'utf8'));
    assert.deepEqual(firstManifest.continuous.tables, ['public.items', 'public.parts'], 'the base records the tables its stream follows');

    const streamer = startCli(['stream', 'drilled', '--poll-interval', '0.2'], env);
    processes.push(streamer);
    await waitFor(
      'the streamer to hold the slot',
      async () => (await adminQuery<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot]))[0]?.active,
      30_000,
    );

    // Changes of every kind, each its own transaction; one insert nothing later touches.
    for (let i = 21; i <= 60; i++) await adminQuery('insert into items values ($1, $1, $2)', [i, 'streamed'], source.url);
    await adminQuery("insert into items values (5000, 0, 'the change to lose')", [], source.url);
    for (let i = 1; i <= 20; i++) {
      await adminQuery('update items set n = n + 100 where id = $1', [i], source.url);
      await adminQuery('insert into parts (item, qty) values ($1, $2)', [i, i * 2], source.url);
    }
    await adminQuery('delete from items where id between 50 and 55', [], source.url);

    const second = await json(['backup', source.url, '--target', 'drilled']);
    assert.equal(second.status, 'succeeded', JSON.stringify(second.error));
    const { rows: secondRows } = await catalog.pool.query<{ base_lsn: string }>('select base_lsn::text from backstop.runs where id = $1', [second.id]);
    const secondLsn = secondRows[0]!.base_lsn;
    assert.ok(secondLsn, 'the second backup is a base');

    await adminQuery("update items set note = 'after the second base' where id = 1", [], source.url);
    await waitFor(
      'segments past the second base',
      async () => (await catalog.pool.query('select 1 from backstop.change_segments where slot_name = $1 and end_lsn >= $2::pg_lsn', [slot, secondLsn])).rowCount,
      60_000,
    );
    streamer.child.kill('SIGTERM');
    await streamer.exited;

    const drillEnv = { BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres' };
    const passed = await json(['verify', first.id], drillEnv);
    assert.equal(passed.status, 'succeeded', JSON.stringify(passed));
    const good = await verification(first.id);
    assert.equal(good.status, 'passed', JSON.stringify(good));
    assert.deepEqual(
      { runId: good.point?.laterBase?.runId, lsn: good.point?.laterBase?.lsn, tables: good.point?.laterBase?.tables, checksums: good.point?.laterBase?.checksums },
      { runId: second.id, lsn: secondLsn, tables: 2, checksums: true },
      'the replay went on to the second base and compared both tables with its counts and checksums',
    );

    // A streamer that lost a transaction: its segment rewritten, well-formed, without it.
    const store = await openStore(`file://${storeDir}`);
    let rewritten = 0;
    try {
      for (const segment of await listStoredSegments(store, 'drilled', added.id)) {
        const text = zstdDecompressSync(await fs.readFile(path.join(storeDir, segmentDataKey(segment)))).toString('utf8');
        const lines = text
          .split('\n')
          .filter((line) => line.length > 0)
          .map((line) => JSON.parse(line) as SegmentLine);
        const kept = lines.filter((line) => !(line.type === 'transaction' && line.changes.some((change) => change.kind === 'insert' && change.new.id === '5000')));
        if (kept.length === lines.length) continue;
        await writeSegment(store, {
          target: 'drilled',
          targetId: added.id,
          slot,
          generation: segment.manifest.generation,
          startLsn: segment.manifest.startLsn,
          endLsn: segment.manifest.endLsn,
          lines: kept,
        });
        rewritten++;
      }
    } finally {
      await store.close();
    }
    assert.equal(rewritten, 1, 'one segment held the transaction');

    const failed = await runCli(['verify', first.id, '--json'], { ...env, ...drillEnv });
    assert.notEqual(failed.code, 0, failed.stdout);
    const finding = await verification(first.id);
    assert.equal(finding.status, 'failed');
    assert.equal(finding.error?.code, 'VERIFY_MISMATCH', JSON.stringify(finding.error));
    assert.match(finding.error!.message, new RegExp(`where base backup ${second.id} was taken`));
    assert.match(finding.error!.message, /public\.items: 54 rows restored, 55 expected/);
  });
});
