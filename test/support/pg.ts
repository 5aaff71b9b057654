import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { tableFingerprints } from '../../bench/chaos/fingerprints.ts';
import { withDatabase } from '../../src/core/databaseUrl.ts';
import { createPool, type Pool } from '../../src/db/pool.ts';

/** The test server started by scripts/test.ts. */
export function adminUrl(): string {
  const url = process.env.BACKSTOP_TEST_ADMIN_URL;
  if (!url) {
    throw new Error('BACKSTOP_TEST_ADMIN_URL is not set: run the tests with `npm test` (or `npm test -- test/FILE.test.ts`), which starts PostgreSQL.');
  }
  return url;
}

export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values?: unknown[], url = adminUrl()): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A fresh database on the test server; `template` clones a prepared one (the migrated catalog). */
export async function createTestDatabase(prefix = 'db', template?: string, serverUrl = adminUrl()): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  await adminQuery(`create database ${name}${template ? ` template ${template}` : ''}`, [], serverUrl);
  return {
    name,
    url: withDatabase(serverUrl, name),
    drop: async () => {
      await adminQuery(`drop database if exists ${name} with (force)`, [], serverUrl);
    },
  };
}

export interface TestCatalog extends TestDatabase {
  pool: Pool;
  close(): Promise<void>;
}

/** A catalog database cloned from the migrated template (see scripts/test.ts). */
export async function createTestCatalog(): Promise<TestCatalog> {
  const database = await createTestDatabase('catalog', process.env.BACKSTOP_TEST_TEMPLATE ?? 'backstop_template');
  const pool = createPool(database.url, { max: 5 });
  return {
    ...database,
    pool,
    async close() {
      await pool.end();
      await database.drop();
    },
  };
}

/** A source database with several tables and types, `rows` orders. */
export async function createSampleDatabase(rows = 2000): Promise<TestDatabase> {
  const database = await createTestDatabase('src');
  await adminQuery(
    `create table customers (id bigint generated always as identity primary key, email text not null unique, profile jsonb not null default '{}');
     create table orders (id uuid primary key default gen_random_uuid(), customer_id bigint references customers (id), total numeric(12,2), note text, blob bytea, at timestamptz default now());
     create schema audit;
     create table audit.log (id bigserial primary key, message text);
     create view order_totals as select customer_id, sum(total) as total from orders group by customer_id;
     insert into customers (email, profile) select 'c' || i || '@example.com', jsonb_build_object('n', i) from generate_series(1, 200) i;
     insert into orders (customer_id, total, note, blob) select 1 + i % 200, i * 1.5, repeat('x', i % 50), decode(md5(i::text), 'hex') from generate_series(1, $1::int) i;
     insert into audit.log (message) select 'event ' || i from generate_series(1, 50) i;`.replace('$1::int', String(rows)),
    [],
    database.url,
  );
  return database;
}

/** Table fingerprints read with plain SQL, independent of Backstop's own counting: the chaos checker's. */
export { tableFingerprints };

/** What the parallel tests add to the sample besides tables: a sequence, two large objects, a materialized view. */
export async function addParallelSampleExtras(url: string): Promise<void> {
  await adminQuery(
    `create sequence standalone_seq; select setval('standalone_seq', 4242);
     select lo_from_bytea(0, 'large object one'), lo_from_bytea(0, 'large object two');
     create materialized view customer_totals as select customer_id, count(*) from orders group by customer_id;
     analyze;`,
    [],
    url,
  );
}

/**
 * What a restore of the parallel tests' sample (a standalone_seq, two large objects, the
 * customer_totals materialized view) must bring back besides table rows.
 */
export async function parallelSampleExtras(url: string) {
  const [row] = await adminQuery<{ seq: string; lo: string; mv: string }>(
    `select (select last_value from standalone_seq)::text as seq,
            (select string_agg(encode(lo_get(oid), 'escape'), ',' order by oid) from pg_largeobject_metadata) as lo,
            (select count(*) from customer_totals)::text as mv`,
    [],
    url,
  );
  return row;
}

/** The schema as pg_dump prints it, for comparing two databases' structure. */
export async function schemaOf(url: string): Promise<string> {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { stdout } = await promisify(execFile)('pg_dump', ['--schema-only', '--no-owner', '--no-privileges', `--dbname=${url}`]);
  return stdout
    .replace(/^--.*$/gm, '')
    .replace(/^\\(un)?restrict .*$/gm, '')
    .trim();
}

/**
 * Holds an ACCESS EXCLUSIVE lock on a table in an open transaction: a pg_dump started now
 * blocks on it, which gives a test a dump that is "in the middle" for as long as it needs,
 * without depending on how fast this machine dumps.
 */
export async function holdTableLock(url: string, table: string): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  await client.query('begin');
  await client.query(`lock table ${table} in access exclusive mode`);
  return {
    async release() {
      await client.query('rollback').catch(() => {});
      await client.end().catch(() => {});
    },
  };
}

/** pg_dump sessions of a run, as the server sees them (application_name carries the run id). */
export async function dumpSessions(runId: string): Promise<number> {
  const [row] = await adminQuery<{ count: string }>(`select count(*) as count from pg_stat_activity where application_name = $1`, [`backstop:${runId}`]);
  return Number(row!.count);
}

/**
 * `backstop backup SOURCE` then `backstop restore` into a new database, through whichever
 * installed form `backstop` runs; the restored tables must equal the source's.
 */
export async function assertBackupRestores(backstop: (args: string[]) => Promise<{ stdout: string; stderr: string }>, source: TestDatabase, target: string): Promise<void> {
  const backup = await backstop(['backup', source.url, '--target', target, '--json']);
  const result = JSON.parse(backup.stdout) as { id: string; status: string };
  assert.equal(result.status, 'succeeded', backup.stderr);
  const restored = await createTestDatabase(`${target}_restore`);
  try {
    await backstop(['restore', result.id, '--to', restored.url]);
    assert.deepEqual(await tableFingerprints(restored.url), await tableFingerprints(source.url));
  } finally {
    await restored.drop();
  }
}
