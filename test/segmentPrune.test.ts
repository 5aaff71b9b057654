import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compareLsn } from '../src/core/changeSegment.ts';
import { planSegmentGarbage, segmentKeyOf } from '../src/core/planSegmentGarbage.ts';
import type { PruneReport } from '../src/operations/pruneTargets.ts';
import { fastLeaseEnv, killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { currentLsn, dropSourceWithSlots, slotState, waitForStoredTo } from './support/continuous.ts';
import { adminQuery, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { filesUnder } from './support/store.ts';
import { waitFor } from './support/wait.ts';

describe('planSegmentGarbage', () => {
  const manifest = (endLsn: string) => ({ manifestKey: `app/continuous/s/${endLsn}.json`, dataKey: 'd', manifest: { endLsn } as never });
  it('deletes what ends at or before the oldest base, nothing while a base is unread or none is kept, and debris past the grace period', () => {
    const segments = [manifest('0/100'), manifest('0/200'), manifest('0/300')];
    const debris = [
      { key: 'old', lastModified: 0 },
      { key: 'young', lastModified: 9_000 },
    ];
    const plan = planSegmentGarbage({ segments, orphanData: debris, baseLsns: ['0/300', '0/200'], now: 10_000, gracePeriodMs: 5_000 });
    assert.equal(plan.before, '0/200');
    assert.deepEqual(
      plan.delete.map((segment) => segment.manifest.endLsn),
      ['0/100', '0/200'],
    );
    assert.deepEqual(
      plan.debris.map((object) => object.key),
      ['old'],
    );
    assert.equal(plan.debrisWaiting, 1);
    assert.deepEqual(planSegmentGarbage({ segments, orphanData: [], baseLsns: null, now: 0, gracePeriodMs: 0 }).delete, []);
    assert.deepEqual(planSegmentGarbage({ segments, orphanData: [], baseLsns: [], now: 0, gracePeriodMs: 0 }).delete, []);
  });
  it('names segment keys by their layout only', () => {
    assert.deepEqual(segmentKeyOf('app/continuous/', 'app/continuous/slot/0000000000000001-00000001000000FF-g2.jsonl.zst.age'), {
      segment: 'app/continuous/slot/0000000000000001-00000001000000FF-g2',
      manifest: false,
      endLsn: '1/FF',
    });
    assert.equal(segmentKeyOf('app/continuous/', 'app/continuous/slot/0000000000000001-00000001000000FF-g2.json')?.manifest, true);
    assert.equal(segmentKeyOf('app/continuous/', 'app/continuous/slot/notes.txt'), null);
    assert.equal(segmentKeyOf('app/continuous/', 'app/continuous/0000000000000001-00000001000000FF-g2.json'), null);
    assert.equal(segmentKeyOf('app/continuous/', 'app/continuous/a/b/0000000000000001-00000001000000FF-g2.json'), null);
  });
});

/**
 * Retention of a continuous target's base backups takes the change segments with them: bases
 * A < B < C with segments between, and a policy keeping two.
 */
describe('pruning a continuous target', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  const processes: CliProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('prunesrc');
    await adminQuery(`create table items (id serial primary key, name text not null)`, [], source.url);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-segprune-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, ...fastLeaseEnv };
  });
  after(async () => {
    await killAll(processes);
    await catalog.close();
    await dropSourceWithSlots(source);
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('deletes the segments before the oldest kept base, keeps the rest (even without their catalog rows), and restores between the kept bases', { timeout: 300_000 }, async () => {
    const storePath = path.join(storeDir, 'store');
    const added = await runCli(
      ['target', 'add', 'prune-app', '--database-url', source.url, '--store', `file://${storePath}`, '--continuous', '--segment-seconds', '1', '--keep-last', '2', '--json'],
      env,
    );
    assert.equal(added.code, 0, added.stderr);
    const target = JSON.parse(added.stdout) as { id: string; name: string; baseRunId: string; continuous: { slot: string } };
    const slot = target.continuous.slot;
    processes.push(startCli(['stream', target.name, '--poll-interval', '0.2'], env));
    await waitFor('the streamer to hold the slot', async () => (await slotState(source.url, slot))?.active, 30_000);

    const commitAndStore = async (name: string) => {
      await adminQuery('insert into items (name) values ($1)', [name], source.url);
      await waitForStoredTo(catalog.pool, target.id, source.url, await currentLsn(source.url));
    };
    const baseLsn = async (runId: string) =>
      (await catalog.pool.query<{ base_lsn: string }>('select base_lsn::text as base_lsn from backstop.runs where id = $1', [runId])).rows[0]!.base_lsn;
    const takeBase = async () => {
      const result = await runCli(['backup', source.url, '--target', target.name, '--json'], env);
      assert.equal(result.code, 0, result.stderr);
      const run = JSON.parse(result.stdout) as { id: string; status: string };
      assert.equal(run.status, 'succeeded');
      return run.id;
    };

    const first = await runCli(['run', target.baseRunId, '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const a = target.baseRunId;
    await commitAndStore('after A 1');
    await commitAndStore('after A 2');
    const b = await takeBase();
    await commitAndStore('after B');
    const [{ at: betweenBAndC }] = (await adminQuery<{ at: string }>(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`, [], source.url)) as [
      { at: string },
    ];
    await commitAndStore('later, before C');
    const c = await takeBase();
    await commitAndStore('after C');
    const bLsn = await baseLsn(b);
    assert.ok(compareLsn(await baseLsn(a), bLsn) < 0 && compareLsn(bLsn, await baseLsn(c)) < 0);

    const manifestsIn = async () => (await filesUnder(storePath)).filter((file) => file.includes('/continuous/') && file.endsWith('.json')).sort();
    const endOf = (file: string) => segmentKeyOf(`${target.name}/continuous/`, file.slice(file.indexOf(`${target.name}/continuous/`)))!.endLsn;
    const before = await manifestsIn();
    const doomed = before.filter((file) => compareLsn(endOf(file), bLsn) <= 0);
    const needed = before.filter((file) => compareLsn(endOf(file), bLsn) > 0);
    assert.ok(doomed.length >= 2 && needed.length >= 2, `${doomed.length} segment(s) before B, ${needed.length} after`);

    // The segment B's replay starts with has lost its catalog row: it is still needed.
    const straddling = needed[0]!;
    const straddlingKey = straddling.slice(straddling.indexOf(`${target.name}/continuous/`));
    const forgotten = await catalog.pool.query('delete from backstop.change_segments where target_id = $1 and manifest_key = $2', [target.id, straddlingKey]);
    assert.equal(forgotten.rowCount, 1);
    // Crash debris: segment data whose manifest was never written, one old and one just written.
    const slotDir = path.join(storePath, target.name, 'continuous', slot);
    const oldDebris = path.join(slotDir, '0000000000000001-0000000000000002-g1.jsonl.zst');
    const youngDebris = path.join(slotDir, '0000000000000003-0000000000000004-g1.jsonl.zst');
    await fs.writeFile(oldDebris, 'partial');
    await fs.writeFile(youngDebris, 'partial');
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    await fs.utimes(oldDebris, twoDaysAgo, twoDaysAgo);
    const everything = await filesUnder(storePath);

    const dry = await runCli(['prune', '--target', target.name, '--dry-run', '--json'], env);
    assert.equal(dry.code, 0, dry.stderr);
    const planned = (JSON.parse(dry.stdout) as PruneReport).targets[0]!;
    assert.deepEqual(
      planned.delete.map((backup) => backup.id),
      [a],
    );
    assert.deepEqual(planned.segments.map((segment) => segment.manifestKey).sort(), doomed.map((file) => file.slice(file.indexOf(`${target.name}/continuous/`))).sort());
    assert.deepEqual(
      planned.segmentDebris.map((item) => path.basename(item.key)),
      [path.basename(oldDebris)],
    );
    assert.equal(planned.segmentDebrisWaiting, 1);
    assert.deepEqual(await filesUnder(storePath), everything, 'a dry run deletes nothing');

    const pruned = await runCli(['prune', '--target', target.name, '--json'], env);
    assert.equal(pruned.code, 0, pruned.stderr);
    const report = (JSON.parse(pruned.stdout) as PruneReport).targets[0]!;
    assert.deepEqual(report.deleted, [a]);
    assert.equal(report.segments.length, doomed.length);
    assert.deepEqual(await manifestsIn(), needed, 'the segments before B are gone, the rest kept');
    const left = await filesUnder(storePath);
    assert.ok(left.includes(straddling.replace(/\.json$/, '.jsonl.zst')), 'the data of the segment that lost its row stays too');
    for (const file of doomed) assert.ok(!left.includes(file.replace(/\.json$/, '.jsonl.zst')), `${file}'s data is gone`);
    assert.ok(!left.includes(path.relative(storePath, oldDebris)) && left.includes(path.relative(storePath, youngDebris)), 'old debris collected, young debris kept');
    const { rows } = await catalog.pool.query<{ count: number }>('select count(*)::int as count from backstop.change_segments where target_id = $1 and end_lsn <= $2::pg_lsn', [
      target.id,
      bLsn,
    ]);
    assert.equal(rows[0]!.count, 0, 'their catalog rows are gone');

    const window = await runCli(['window', target.name, '--json'], env);
    assert.equal(window.code, 0, window.stderr);
    assert.equal((JSON.parse(window.stdout) as { continuity: { window: { from: { runId: string } } } }).continuity.window.from.runId, b, 'the window starts at B');

    const restored = await createTestDatabase('prunedst');
    try {
      const result = await runCli(['restore', target.name, '--at', betweenBAndC, '--to', restored.url, '--json'], env);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(JSON.parse(result.stdout).pointInTime.baseRunId, b);
      const names = await adminQuery<{ name: string }>('select name from items order by id', [], restored.url);
      assert.deepEqual(
        names.map((row) => row.name),
        ['after A 1', 'after A 2', 'after B'],
      );
    } finally {
      await restored.drop();
    }

    // A second pass finds nothing more to delete.
    const again = await runCli(['prune', '--target', target.name, '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((JSON.parse(again.stdout) as PruneReport).targets[0]!.segments, []);
  });
});
