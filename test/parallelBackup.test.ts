import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { planDataStreams } from '../src/core/planDataStreams.ts';
import { generateIdentity, parseIdentities } from '../src/pipeline/age.ts';
import { artifactProfiles } from '../src/pipeline/artifactProfiles.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { adminQuery, createSampleDatabase, createTestDatabase, schemaOf, tableFingerprints, type TestDatabase } from './support/pg.ts';

/** What a restore must bring back besides table rows: sequence values, large objects, materialized view data. */
async function extras(url: string) {
  const [row] = await adminQuery<{ seq: string; lo: string; mv: string }>(
    `select (select last_value from standalone_seq)::text as seq,
            (select string_agg(encode(lo_get(oid), 'escape'), ',' order by oid) from pg_largeobject_metadata) as lo,
            (select count(*) from customer_totals)::text as mv`,
    [],
    url,
  );
  return row;
}

describe('parallel backup (--jobs) and its restore', () => {
  let source: TestDatabase;
  let root: string;
  let store: Store;
  const key = generateIdentity();
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    source = await createSampleDatabase(20_000);
    // More tables than streams, of uneven sizes, and the pieces of data no table list names.
    await adminQuery(
      `create table "Mixed Case" (id int primary key, v text);
       insert into "Mixed Case" select i, repeat('m', i % 30) from generate_series(1, 3000) i;
       create table empty_table (id int);
       create table child (id int references "Mixed Case" (id));
       insert into child select i from generate_series(1, 500) i;
       create sequence standalone_seq; select setval('standalone_seq', 4242);
       select lo_from_bytea(0, 'large object one'), lo_from_bytea(0, 'large object two');
       create materialized view customer_totals as select customer_id, count(*) from orders group by customer_id;
       analyze;`,
      [],
      source.url,
    );
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
      assert.deepEqual(await extras(target.url), await extras(source.url));
      assert.deepEqual(await extras(target.url), { seq: '4242', lo: 'large object one,large object two', mv: '200' });
      // pg_restore's order: pre-data, then the data files, then post-data.
      const steps = events.filter((event) => / restored$/.test(event));
      assert.match(steps[0]!, /pre-data restored/);
      assert.match(steps.at(-1)!, /post-data restored/);
      assert.equal(steps.filter((step) => /data restored$/.test(step) && !/-data restored/.test(step)).length, jobs);
    });
  }
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
    assert.deepEqual(planDataStreams([], 4), [[]]);
  });
});
