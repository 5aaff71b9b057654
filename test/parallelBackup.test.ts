import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { BackstopError } from '../src/core/errors.ts';
import type { Manifest } from '../src/core/manifest.ts';
import { planDataStreams } from '../src/core/planDataStreams.ts';
import { generateIdentity, parseIdentities } from '../src/pipeline/age.ts';
import { artifactProfiles } from '../src/pipeline/artifactProfiles.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { openSourceSnapshot } from '../src/pipeline/sourceSnapshot.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import {
  addParallelSampleExtras,
  adminQuery,
  createSampleDatabase,
  createTestDatabase,
  holdTableLock,
  parallelSampleExtras,
  schemaOf,
  tableFingerprints,
  type TestDatabase,
} from './support/pg.ts';
import { waitFor } from './support/wait.ts';

describe('parallel backup (--jobs) and its restore', () => {
  let source: TestDatabase;
  let root: string;
  let store: Store;
  const key = generateIdentity();
  const cleanups: Array<() => Promise<void>> = [];
  let encryptedPrefix: string | undefined;
  let plain: { prefix: string; manifest: Manifest } | undefined;

  before(async () => {
    source = await createSampleDatabase(20_000);
    // More tables than streams, of uneven sizes, and the pieces of data no table list names.
    await adminQuery(
      `create table "Mixed Case" (id int primary key, v text);
       insert into "Mixed Case" select i, repeat('m', i % 30) from generate_series(1, 3000) i;
       create table empty_table (id int);
       create table child (id int references "Mixed Case" (id));
       insert into child select i from generate_series(1, 500) i;
       analyze;`,
      [],
      source.url,
    );
    await addParallelSampleExtras(source.url);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-parallel-'));
    store = await openStore(`file://${path.join(root, 'store')}`);
  });
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await store.close();
    await source.drop();
    await fs.rm(root, { recursive: true, force: true });
  });

  const backup = async (jobs: number, encrypt: boolean) => {
    const runId = randomUUID();
    const artifact = await artifactProfiles.default.backup({
      runId,
      attempt: 1,
      targetName: `parallel${jobs}`,
      createdAt: new Date().toISOString(),
      databaseUrl: source.url,
      store,
      jobs,
      checksums: true,
      ...(encrypt ? { encryptTo: [key.recipient] } : {}),
      signal: new AbortController().signal,
    });
    return { artifact, manifest: (await readManifest(store, artifact.prefix)).manifest };
  };

  for (const jobs of [2, 4]) {
    it(`--jobs ${jobs}: one snapshot, ${jobs} data files and the schema, restored equal to the source`, async () => {
      const { artifact, manifest } = await backup(jobs, jobs === 4);
      if (jobs === 4) encryptedPrefix = artifact.prefix;
      else plain = { prefix: artifact.prefix, manifest };
      assert.equal(manifest.parallel?.jobs, jobs);
      assert.equal(manifest.parallel?.data.length, jobs);
      assert.deepEqual(
        manifest.files.map((file) => `${file.role}:${file.name}`),
        [`schema:schema.pgcustom.zst${jobs === 4 ? '.age' : ''}`, ...Array.from({ length: jobs }, (_, i) => `data:data-${i + 1}.pgcustom.zst${jobs === 4 ? '.age' : ''}`)],
      );
      // Every pg_dump read the same exported snapshot.
      const snapshots = new Set(manifest.files.map((file) => file.dumpedBy?.options.find((option) => option.startsWith('--snapshot='))));
      assert.equal(snapshots.size, 1);
      assert.ok([...snapshots][0]);
      // Disjoint table sets that together name every table but the rest file's own.
      const listed = manifest.parallel!.data.flatMap((data) => data.tables.map((table) => `${table.schema}.${table.name}`));
      assert.equal(new Set(listed).size, listed.length);
      assert.deepEqual(
        manifest.tables.map((table) => `${table.schema}.${table.name}=${table.rows}`),
        ['audit.log=50', 'public.child=500', 'public.customers=200', 'public.empty_table=0', 'public.Mixed Case=3000', 'public.orders=20000'],
      );
      assert.ok(manifest.tables.every((table) => table.checksum !== undefined));
      assert.deepEqual((await fs.readdir(path.join(root, 'store', artifact.prefix))).sort(), [...manifest.files.map((file) => file.name), 'manifest.json'].sort());

      const target = await createTestDatabase(`parallel${jobs}`);
      cleanups.push(target.drop);
      const events: string[] = [];
      const result = await artifactProfiles.default.restore({
        store,
        prefix: artifact.prefix,
        manifest,
        toUrl: target.url,
        jobs,
        identities: jobs === 4 ? parseIdentities(key.identity) : undefined,
        onEvent: (_kind, message) => events.push(message),
      });
      assert.equal(result.tablesChecked, 6);
      assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
      assert.equal(await schemaOf(target.url), await schemaOf(source.url));
      assert.deepEqual(await parallelSampleExtras(target.url), await parallelSampleExtras(source.url));
      assert.deepEqual(await parallelSampleExtras(target.url), { seq: '4242', lo: 'large object one,large object two', mv: '200' });
      // pg_restore's order: pre-data, then the data files, then post-data.
      const steps = events.filter((event) => / restored$/.test(event));
      assert.match(steps[0]!, /pre-data restored/);
      assert.match(steps.at(-1)!, /post-data restored/);
      assert.equal(steps.filter((step) => /data restored$/.test(step) && !/-data restored/.test(step)).length, jobs);
    });
  }

  it('a restore whose rows differ from the manifest fails, naming every table of every data file', async () => {
    assert.ok(plain);
    const target = await createTestDatabase('parallel_rows');
    cleanups.push(target.drop);
    // One row more for every table than the database will hold: each must be counted, those of
    // the file that takes the rest as well as those a file names.
    const manifest = { ...plain.manifest, tables: plain.manifest.tables.map((table) => ({ ...table, rows: table.rows + 1 })) };
    await assert.rejects(artifactProfiles.default.restore({ store, prefix: plain.prefix, manifest, toUrl: target.url, jobs: 2 }), (error: BackstopError) => {
      assert.equal(error.code, 'RESTORE_FAILED');
      for (const table of plain!.manifest.tables) assert.ok(error.message.includes(`${table.schema}.${table.name} has ${table.rows} rows, the backup ${table.rows + 1}`), error.message);
      return true;
    });
  });

  it("restores with age, zstd and pg_restore alone, by the README's own commands", async () => {
    assert.ok(encryptedPrefix, 'the --jobs 4 backup ran');
    const readme = await fs.readFile(path.join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const block = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!).find((text) => text.includes('schema.pgcustom.zst.age'));
    assert.ok(block, 'the README shows how to restore a parallel backup');
    const target = await createTestDatabase('parallel_tools');
    cleanups.push(target.drop);
    const directory = path.join(root, 'store', encryptedPrefix);
    await fs.writeFile(path.join(directory, 'key.txt'), `${key.identity}\n`, { mode: 0o600 });
    const script = block.replaceAll('postgres://…/empty_db', `'${target.url}'`);
    const { execFile } = await import('node:child_process');
    await new Promise<void>((resolve, reject) =>
      execFile('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd: directory }, (error, _stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve())),
    );
    assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
    assert.equal(await schemaOf(target.url), await schemaOf(source.url));
    assert.deepEqual(await parallelSampleExtras(target.url), await parallelSampleExtras(source.url));
  });
});

describe('planDataStreams', () => {
  it('gives the largest tables first to the least-loaded stream, never an empty stream', () => {
    const table = (name: string, bytes: number) => ({ schema: 's', name, bytes });
    const sets = planDataStreams([table('a', 10), table('b', 70), table('c', 30), table('d', 30), table('e', 20)], 2);
    assert.deepEqual(
      sets.map((set) => set.map((t) => t.name)),
      [
        ['b', 'a'],
        ['c', 'd', 'e'],
      ],
    );
    assert.deepEqual(planDataStreams([table('a', 1)], 4).length, 1);
    // Tables never analyzed have no size: still one to each stream.
    assert.deepEqual(
      planDataStreams([table('a', 0), table('b', 0), table('c', 0), table('d', 0)], 3).map((set) => set.map((t) => t.name)),
      [['a', 'd'], ['b'], ['c']],
    );
    assert.deepEqual(planDataStreams([], 4), [[]]);
  });
});

describe('a parallel plan of tables never analyzed', () => {
  let source: TestDatabase;
  before(async () => {
    source = await createTestDatabase('never_analyzed');
    // Autovacuum off: relpages stays 0 until someone vacuums or analyzes.
    await adminQuery(
      `create table big (id int, v text) with (autovacuum_enabled = false);
       insert into big select i, repeat('b', 200) from generate_series(1, 20000) i;
       create table small (id int) with (autovacuum_enabled = false);
       insert into small select generate_series(1, 10);
       create table held (id int) with (autovacuum_enabled = false);`,
      [],
      source.url,
    );
  });
  after(async () => {
    await source.drop();
  });

  it('measures them, leaves one locked exclusively at zero, and keeps the snapshot usable', { timeout: 60_000 }, async () => {
    const lock = await holdTableLock(source.url, 'held');
    const snapshot = await openSourceSnapshot(source.url);
    try {
      const relpages = await adminQuery<{ relpages: number }>(`select relpages from pg_class where relname = 'big'`, [], source.url);
      assert.equal(relpages[0]!.relpages, 0);
      const sizes = Object.fromEntries((await snapshot.tableSizes()).map((table) => [table.name, table.bytes]));
      assert.ok(sizes.big! > 4_000_000, `big: ${sizes.big}`);
      assert.ok(sizes.small! > 0 && sizes.small! < sizes.big!, `small: ${sizes.small}`);
      assert.equal(sizes.held, 0);
      // The plan now splits by bytes: the big table alone in one stream.
      assert.deepEqual(
        planDataStreams(
          Object.entries(sizes).map(([name, bytes]) => ({ schema: 'public', name, bytes })),
          2,
        ).map((set) => set.map((table) => table.name)),
        [['big'], ['small', 'held']],
      );
      // The lock timeout ended only a savepoint: the snapshot's transaction counts rows, and
      // waits for a lock as long as it takes again.
      const counting = snapshot.countRows();
      counting.catch(() => {});
      await waitFor(
        'the row count waiting on the lock for over a second',
        async () =>
          (
            await adminQuery(
              `select 1 from pg_stat_activity where datname = $1 and wait_event_type = 'Lock' and query like 'select count(*)%' and now() - query_start > interval '1 second'`,
              [source.name],
              source.url,
            )
          ).length === 1,
        20_000,
      );
      await lock.release();
      assert.deepEqual(
        (await counting).map((table) => [table.name, table.rows]),
        [
          ['big', 20000],
          ['held', 0],
          ['small', 10],
        ],
      );
    } finally {
      await lock.release();
      await snapshot.close();
    }
  });
});

/**
 * Per-table rows and content hash, as `client` sees them (inside a snapshot, when it has
 * imported one); `gate`, which the test holds locked, left out.
 */
async function fingerprintsIn(client: pg.Client): Promise<Record<string, { rows: number; md5: string }>> {
  const { rows: tables } = await client.query<{ schema: string; name: string }>(
    `select table_schema as schema, table_name as name from information_schema.tables
     where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') and table_name <> 'gate' order by 1, 2`,
  );
  const result: Record<string, { rows: number; md5: string }> = {};
  for (const table of tables) {
    const { rows } = await client.query<{ rows: string; md5: string }>(
      `select count(*) as rows, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as md5 from ${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.name)} t`,
    );
    result[`${table.schema}.${table.name}`] = { rows: Number(rows[0]!.rows), md5: rows[0]!.md5 };
  }
  return result;
}

describe('parallel backup while rows are written', () => {
  let source: TestDatabase;
  let root: string;
  let store: Store;

  before(async () => {
    source = await createSampleDatabase(5000);
    await adminQuery('create table gate (id int)', [], source.url);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-parallel-writes-'));
    store = await openStore(`file://${path.join(root, 'store')}`);
  });
  after(async () => {
    await store.close();
    await source.drop();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('--jobs 3 restores exactly what the exported snapshot saw, not a mix of moments', { timeout: 120_000 }, async () => {
    // Every transaction of the writer touches three tables, which the plan puts in different streams.
    let committed = 0;
    let writing = true;
    const writer = new pg.Client({ connectionString: source.url });
    await writer.connect();
    const writes = (async () => {
      while (writing) {
        await writer.query(
          `begin;
           insert into orders (customer_id, total, note) values (1 + floor(random() * 200)::int, 1, 'during');
           update customers set profile = jsonb_set(profile, '{w}', to_jsonb(${committed})) where id = 1 + ${committed} % 200;
           insert into audit.log (message) values ('write ${committed}');
           commit;`,
        );
        committed++;
      }
    })();
    // The schema's pg_dump waits on this lock, which keeps the snapshot exported (its
    // connection stays open until every stream ends) while the test reads it.
    const gate = await holdTableLock(source.url, 'gate');
    const reader = new pg.Client({ connectionString: source.url });
    await reader.connect();
    let seen: Promise<{ fingerprints: Record<string, { rows: number; md5: string }>; committedAt: number }> | undefined;
    try {
      const backup = artifactProfiles.default.backup({
        runId: randomUUID(),
        attempt: 1,
        targetName: 'writes',
        createdAt: new Date().toISOString(),
        databaseUrl: source.url,
        store,
        jobs: 3,
        signal: new AbortController().signal,
        onEvent: (kind, _message, data) => {
          if (kind !== 'dump_started') return;
          seen = (async () => {
            await reader.query('begin isolation level repeatable read read only');
            await reader.query(`set transaction snapshot '${String(data!.snapshot)}'`);
            const fingerprints = await fingerprintsIn(reader);
            await reader.query('commit');
            const committedAt = committed;
            // Writes committed after the snapshot, while the dump is still under way.
            await waitFor('writes after the snapshot', () => committed >= committedAt + 20);
            await gate.release();
            return { fingerprints, committedAt };
          })();
        },
      });
      const artifact = await backup;
      const snapshot = await seen!;
      writing = false;
      await writes;
      const manifest = (await readManifest(store, artifact.prefix)).manifest;
      assert.equal(manifest.parallel?.data.length, 3);

      const target = await createTestDatabase('parallel_writes');
      try {
        await artifactProfiles.default.restore({ store, prefix: artifact.prefix, manifest, toUrl: target.url, jobs: 3 });
        const { 'public.gate': gateRows, ...restored } = await tableFingerprints(target.url);
        assert.deepEqual(gateRows, { rows: 0, md5: '' });
        assert.deepEqual(restored, snapshot.fingerprints);
        // The source moved on: a restore of another moment would differ.
        const { 'public.gate': _, ...now } = await tableFingerprints(source.url);
        assert.notDeepEqual(now, snapshot.fingerprints);
        assert.ok(committed > snapshot.committedAt + 20);
      } finally {
        await target.drop();
      }
    } finally {
      writing = false;
      await writes.catch(() => {});
      await gate.release();
      await reader.end();
      await writer.end();
    }
  });
});
