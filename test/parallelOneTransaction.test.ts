import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import type { BackstopError } from '../src/core/errors.ts';
import type { Manifest } from '../src/core/manifest.ts';
import { artifactProfiles } from '../src/pipeline/artifactProfiles.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { UnwrapTransaction } from '../src/pipeline/unwrapTransaction.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { addParallelSampleExtras, adminQuery, createSampleDatabase, createTestDatabase, parallelSampleExtras, schemaOf, tableFingerprints, type TestDatabase } from './support/pg.ts';

/** Everything of a database's own: relations (of any kind), types, functions, schemas, large objects. */
async function objectsOf(url: string): Promise<string[]> {
  const rows = await adminQuery<{ object: string }>(
    `select 'relation ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text as object
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
     union all
     select 'function ' || n.nspname || '.' || p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname not in ('pg_catalog', 'information_schema')
     union all
     select 'schema ' || nspname from pg_namespace where nspname not in ('pg_catalog', 'information_schema', 'public') and nspname not like 'pg\\_%'
     union all
     select 'large object ' || oid from pg_largeobject_metadata
     order by 1`,
    [],
    url,
  );
  return rows.map((row) => row.object);
}

async function failureOf(restore: Promise<unknown>): Promise<BackstopError> {
  const error = await restore.then(
    () => null,
    (failure: BackstopError) => failure,
  );
  assert.ok(error, 'the restore failed');
  return error;
}

describe('a parallel backup restored with --jobs 1 is all or nothing', () => {
  let source: TestDatabase;
  let root: string;
  let store: Store;
  let artifact: { prefix: string; manifest: Manifest };
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    source = await createSampleDatabase(5_000);
    // A COPY row that reads like a statement, a procedure whose body commits, large objects
    // (restored by pg_restore between a BEGIN and a COMMIT of its own unless it runs as one transaction).
    await adminQuery(
      `create table statements (id int primary key, line text);
       insert into statements values (1, E'COMMIT;'), (2, E'BEGIN;'), (3, E'\\\\.');
       create procedure tidy() language plpgsql as $$
       BEGIN
COMMIT;
       END $$;
       analyze;`,
      [],
      source.url,
    );
    await addParallelSampleExtras(source.url);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-parallel-one-'));
    store = await openStore(`file://${path.join(root, 'store')}`);
    const made = await artifactProfiles.default.backup({
      runId: randomUUID(),
      attempt: 1,
      targetName: 'parallel_one',
      createdAt: new Date().toISOString(),
      databaseUrl: source.url,
      store,
      jobs: 3,
      signal: new AbortController().signal,
    });
    artifact = { prefix: made.prefix, manifest: (await readManifest(store, made.prefix)).manifest };
    assert.equal(artifact.manifest.parallel?.data.length, 3);
  });
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await store.close();
    await source.drop();
    await fs.rm(root, { recursive: true, force: true });
  });

  const target = async (name: string) => {
    const database = await createTestDatabase(name);
    cleanups.push(database.drop);
    return database;
  };

  it('restores equal to the source, in one transaction', async () => {
    const database = await target('one_ok');
    const events: string[] = [];
    const result = await artifactProfiles.default.restore({
      store,
      prefix: artifact.prefix,
      manifest: artifact.manifest,
      toUrl: database.url,
      jobs: 1,
      onEvent: (_kind, message) => events.push(message),
    });
    assert.equal(result.tablesChecked, artifact.manifest.tables.length);
    assert.deepEqual(await tableFingerprints(database.url), await tableFingerprints(source.url));
    assert.equal(await schemaOf(database.url), await schemaOf(source.url));
    assert.deepEqual(await parallelSampleExtras(database.url), { seq: '4242', lo: 'large object one,large object two', mv: String((await parallelSampleExtras(source.url))!.mv) });
    assert.deepEqual(await adminQuery('select line from statements order by id', [], database.url), [{ line: 'COMMIT;' }, { line: 'BEGIN;' }, { line: '\\.' }]);
    assert.match(await schemaOf(database.url), /tidy/);
    assert.ok(events.includes('4 files restored in one transaction, row counts checked before the commit'), events.join('\n'));
  });

  it('post-data failing after every data file loaded leaves nothing of the backup', async () => {
    const database = await target('one_post');
    // Not a table, view or sequence, so the restore starts; post-data's primary key of orders
    // needs the name.
    await adminQuery('create type public.orders_pkey as (x int)', [], database.url);
    const before = await objectsOf(database.url);
    const error = await failureOf(artifactProfiles.default.restore({ store, prefix: artifact.prefix, manifest: artifact.manifest, toUrl: database.url, jobs: 1 }));
    assert.deepEqual(await objectsOf(database.url), before);
    assert.equal(error.code, 'RESTORE_FAILED', error.stack);
    assert.match(error.message, /nothing was committed/);
    assert.match(error.message, /"orders_pkey" already exists/);
  });

  it('row counts that differ from the manifest fail before the commit: nothing of the backup is left', async () => {
    const database = await target('one_rows');
    const before = await objectsOf(database.url);
    const manifest = { ...artifact.manifest, tables: artifact.manifest.tables.map((table) => (table.name === 'orders' ? { ...table, rows: table.rows + 1 } : table)) };
    const error = await failureOf(artifactProfiles.default.restore({ store, prefix: artifact.prefix, manifest, toUrl: database.url, jobs: 1 }));
    assert.deepEqual(before, []);
    assert.deepEqual(await objectsOf(database.url), before);
    assert.equal(error.code, 'RESTORE_FAILED');
    assert.match(error.message, /^The restored database differs from the backup: public\.orders has 5000 rows, the backup 5001\. Nothing was committed\.$/);
  });

  it('a damaged later data file fails the restore and leaves nothing of the backup', async () => {
    // A copy of the artifact whose last data file has one byte changed.
    const prefix = `${artifact.prefix.replace(/\/$/, '')}-damaged/`;
    const from = path.join(root, 'store', artifact.prefix);
    const to = path.join(root, 'store', prefix);
    await fs.cp(from, to, { recursive: true });
    const last = artifact.manifest.parallel!.data.at(-1)!.file;
    const bytes = await fs.readFile(path.join(to, last));
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await fs.writeFile(path.join(to, last), bytes);
    const database = await target('one_damaged');
    const events: string[] = [];
    const error = await failureOf(
      artifactProfiles.default.restore({ store, prefix, manifest: artifact.manifest, toUrl: database.url, jobs: 1, onEvent: (_kind, message) => events.push(message) }),
    );
    assert.deepEqual(await objectsOf(database.url), []);
    // zstd refuses the damaged frame: pg_restore reads a cut archive.
    assert.equal(error.code, 'RESTORE_FAILED', error.message);
    assert.match(error.message, new RegExp(`^pg_restore of ${last.replaceAll('.', '\\.')} exited with code 1 \\(nothing was committed\\)`));
    // The earlier files had gone into the transaction before the damage showed.
    assert.ok(
      events.some((event) => event.startsWith(`${artifact.manifest.parallel!.data[0]!.file}: in the transaction`)),
      events.join('\n'),
    );
  });
});

describe('UnwrapTransaction', () => {
  const text = [
    '--\n-- PostgreSQL database dump\n--\n\n\\restrict k1\n\nSET statement_timeout = 0;\n',
    "SELECT pg_catalog.set_config('search_path', '', false);\n\n",
    'BEGIN;\n\n',
    'CREATE PROCEDURE public.tidy()\n    AS $$\nBEGIN\nCOMMIT;\nEND $$;\n\n',
    'COPY public.statements (id, line) FROM stdin;\n1\tCOMMIT;\n2\tBEGIN;\n3\t\\\\.\n\\.\n\n',
    'COMMIT;\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k1\n\n',
  ].join('');
  const expected = text.replace('BEGIN;\n\nCREATE', '\nCREATE').replace('COMMIT;\n\n--\n-- PostgreSQL database dump complete', '\n--\n-- PostgreSQL database dump complete');

  const unwrap = async (chunks: string[]) => {
    const pieces: Buffer[] = [];
    await pipeline(
      Readable.from(chunks.map((chunk) => Buffer.from(chunk))),
      new UnwrapTransaction('a test'),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          pieces.push(chunk);
          callback();
        },
      }),
    );
    return Buffer.concat(pieces).toString();
  };

  it("leaves out only pg_restore's own BEGIN and last COMMIT, however the text is cut into chunks", async () => {
    assert.equal(await unwrap([text]), expected);
    for (const size of [1, 2, 3, 5, 7, 64]) {
      const chunks = Array.from({ length: Math.ceil(text.length / size) }, (_, index) => text.slice(index * size, (index + 1) * size));
      assert.equal(await unwrap(chunks), expected, `chunks of ${size}`);
    }
  });

  it('refuses a text without its BEGIN, or whose COMMIT is not its last statement', async () => {
    await assert.rejects(unwrap([text.replace('BEGIN;\n', '')]), /holds "CREATE PROCEDURE public.tidy\(\)" before its BEGIN/);
    await assert.rejects(unwrap([`${text}SELECT 1;\n`]), /does not end with its COMMIT/);
  });
});
