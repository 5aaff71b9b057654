import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compareLsn } from '../src/core/changeSegment.ts';
import type { WindowLimit } from '../src/core/restoreWindow.ts';
import { withTransaction } from '../src/db/pool.ts';
import { queueBaseBackup } from '../src/db/queueBaseBackup.ts';
import { createRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { fastLeaseEnv, killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { currentLsn, dropSourceWithSlots, slotState, waitForStoredTo } from './support/continuous.ts';
import { adminQuery, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

/**
 * ALTER TABLE on a continuous target's source while it streams: the streamer sees the changed
 * relation, queues one new base backup (however many DDL statements follow), and once that
 * base has run, a restore to the latest point goes from it with the new columns, while a point
 * before the change still restores from the older base.
 */
describe('a schema change of a continuous target', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  const processes: CliProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('ddlsrc');
    await adminQuery(`create table items (id serial primary key, name text not null); insert into items (name) select 'seed ' || i from generate_series(1, 10) i;`, [], source.url);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-ddl-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, ...fastLeaseEnv };
  });
  after(async () => {
    await killAll(processes);
    await catalog.close();
    await dropSourceWithSlots(source);
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  /** Commits `sql`, then waits until the stream has stored it (the catalog's segments reach past the commit). */
  const commitAndStore = async (targetId: string, sql: string): Promise<string> => {
    await adminQuery(sql, [], source.url);
    const lsn = await currentLsn(source.url);
    await waitForStoredTo(catalog.pool, targetId, source.url, lsn);
    return lsn;
  };
  const schemaChangeRuns = async (targetId: string) =>
    (
      await catalog.pool.query<{ id: string; status: string; message: string }>(
        `select r.id, r.status, e.message from backstop.runs r join backstop.run_events e on e.run_id = r.id and e.kind = 'created'
         where r.target_id = $1 and r.trigger = 'schema_change' order by r.created_at`,
        [targetId],
      )
    ).rows;
  const schemaLimits = async (name: string) => {
    const shown = await runCli(['window', name, '--json'], env);
    assert.equal(shown.code, 0, shown.stderr);
    return (JSON.parse(shown.stdout) as { continuity: { window: { limits: WindowLimit[] } } }).continuity.window.limits.filter((limit) => limit.kind === 'schema_change');
  };
  const restore = async (name: string, at: string) => {
    const restored = await createTestDatabase('ddldst');
    const result = await runCli(['restore', name, '--at', at, '--to', restored.url, '--json'], env);
    return { restored, result };
  };

  it('a backup running since before the change is no new base; one queued, or started since, is', async () => {
    const target = await createTarget(catalog.pool, { name: 'ddl-rule', databaseUrl: source.url, storeUrl: `file://${storeDir}`, options: {} });
    const request = (changedAt: string) => ({ targetId: target.id, trigger: 'schema_change', reason: 'schema change of public.items at 0/1', changedAt, runDeadlineMs: 60_000 });
    const running = await createRun(catalog.pool, { targetId: target.id, trigger: 'manual', runDeadlineMs: 60_000 });
    await catalog.pool.query(
      "update backstop.runs set status = 'running', started_at = '2026-01-01T00:00:10Z', lease_id = gen_random_uuid(), lease_expires_at = now() + interval '1 hour' where id = $1",
      [running.id],
    );
    const afterStart = await withTransaction(catalog.pool, (client) => queueBaseBackup(client, request('2026-01-01T00:00:20Z')));
    assert.equal(afterStart.queued, true, 'the running backup dumps the old shape');
    const again = await withTransaction(catalog.pool, (client) => queueBaseBackup(client, request('2026-01-01T00:00:30Z')));
    assert.deepEqual([again.queued, again.run.id], [false, afterStart.run.id], 'the queued one will');
    await catalog.pool.query("update backstop.runs set status = 'cancelled', finished_at = now() where id = $1", [afterStart.run.id]);
    const sinceStart = await withTransaction(catalog.pool, (client) => queueBaseBackup(client, request('2026-01-01T00:00:05Z')));
    assert.deepEqual([sinceStart.queued, sinceStart.run.id], [false, running.id], 'one that started after the change will');
  });

  it('queues exactly one new base backup, and restores across the change from it', { timeout: 300_000 }, async () => {
    const storeUrl = `file://${path.join(storeDir, 'store')}`;
    const added = await runCli(['target', 'add', 'ddl-app', '--database-url', source.url, '--store', storeUrl, '--continuous', '--segment-seconds', '1', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    const target = JSON.parse(added.stdout) as { id: string; name: string; baseRunId: string; continuous: { slot: string } };
    const streamer = startCli(['stream', target.name, '--poll-interval', '0.2'], env);
    processes.push(streamer);
    await waitFor('the streamer to hold the slot', async () => (await slotState(source.url, target.continuous.slot))?.active, 30_000);
    const first = await runCli(['run', target.baseRunId, '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).status, 'succeeded');

    await commitAndStore(target.id, "insert into items (name) values ('before the change')");
    const [{ at: beforeChange }] = (await adminQuery<{ at: string }>(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`, [], source.url)) as [
      { at: string },
    ];
    assert.deepEqual(await schemaChangeRuns(target.id), [], 'no schema change, no backup');

    // Two changes of shape, each stored in a segment of its own: one backup for both.
    const changedAt = await commitAndStore(target.id, "alter table items add column colour text; insert into items (name, colour) values ('after the change', 'red')");
    const queued = await waitFor('the backup queued by the schema change', async () => (await schemaChangeRuns(target.id))[0]);
    assert.equal(queued.status, 'queued');
    assert.match(queued.message, /^schema change of public\.items at [0-9A-F]+\/[0-9A-F]+$/);
    assert.ok(compareLsn(queued.message.split(' at ')[1]!, changedAt) <= 0);
    await commitAndStore(target.id, "alter table items add column size int; insert into items (name, colour, size) values ('second change', 'blue', 3)");
    const { rows: changedSegments } = await catalog.pool.query<{ count: number }>(
      `select count(*)::int as count from backstop.change_segments where target_id = $1 and manifest->'schemaChanges' ? 'public.items'`,
      [target.id],
    );
    assert.equal(changedSegments[0]!.count, 2, 'both changes are stored, in two segments');
    assert.deepEqual(
      (await schemaChangeRuns(target.id)).map((run) => run.id),
      [queued.id],
      'the second change finds the backup queued and queues none',
    );
    const { rows: noted } = await catalog.pool.query<{ message: string }>("select message from backstop.run_events where run_id = $1 and kind = 'base_needed'", [queued.id]);
    assert.equal(noted.length, 1);
    assert.match(noted[0]!.message, /^schema change of public\.items at [0-9A-F]+\/[0-9A-F]+: this backup becomes the new base$/);

    // Before the new base: the window says where replay crosses the change, and a restore across it is refused.
    const open = await schemaLimits(target.name);
    assert.equal(open.length, 2);
    for (const limit of open) assert.ok(limit.kind === 'schema_change' && limit.clearedBy === null, limit.message);
    const refused = await restore(target.name, 'latest');
    try {
      assert.notEqual(refused.result.code, 0, refused.result.stdout);
      assert.match(refused.result.stderr, /changed shape after the base backup/);
    } finally {
      await refused.restored.drop();
    }

    // The queued backup, run by the runner, is the new base.
    const rebased = await runCli(['run', queued.id, '--json'], env);
    assert.equal(rebased.code, 0, rebased.stderr);
    assert.equal(JSON.parse(rebased.stdout).status, 'succeeded');
    await commitAndStore(target.id, "insert into items (name, colour, size) values ('after the new base', 'green', 4)");
    const cleared = await schemaLimits(target.name);
    assert.equal(cleared.length, 2);
    for (const limit of cleared) assert.ok(limit.kind === 'schema_change' && limit.clearedBy?.runId === queued.id, limit.message);

    const latest = await restore(target.name, 'latest');
    try {
      assert.equal(latest.result.code, 0, latest.result.stderr);
      assert.equal(JSON.parse(latest.result.stdout).pointInTime.baseRunId, queued.id, 'the newest base, taken after the change');
      const rows = await adminQuery<{ name: string; colour: string | null; size: number | null }>(
        "select name, colour, size from items where name not like 'seed %' order by id",
        [],
        latest.restored.url,
      );
      assert.deepEqual(rows, [
        { name: 'before the change', colour: null, size: null },
        { name: 'after the change', colour: 'red', size: null },
        { name: 'second change', colour: 'blue', size: 3 },
        { name: 'after the new base', colour: 'green', size: 4 },
      ]);
    } finally {
      await latest.restored.drop();
    }

    const earlier = await restore(target.name, beforeChange);
    try {
      assert.equal(earlier.result.code, 0, earlier.result.stderr);
      assert.equal(JSON.parse(earlier.result.stdout).pointInTime.baseRunId, target.baseRunId, 'the older base, before the change');
      const columns = await adminQuery<{ column_name: string }>(
        "select column_name from information_schema.columns where table_name = 'items' order by ordinal_position",
        [],
        earlier.restored.url,
      );
      assert.deepEqual(
        columns.map((column) => column.column_name),
        ['id', 'name'],
      );
      const names = await adminQuery<{ name: string }>("select name from items where name not like 'seed %'", [], earlier.restored.url);
      assert.deepEqual(names, [{ name: 'before the change' }]);
    } finally {
      await earlier.restored.drop();
    }
  });
});
