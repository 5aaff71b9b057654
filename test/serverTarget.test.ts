import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome, type EmbeddedInstance } from '../src/db/embeddedPostgres.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, adminUrl, createTestCatalog, type TestCatalog } from './support/pg.ts';
import { serverFingerprint } from './support/serverFingerprint.ts';
import { filesUnder } from './support/store.ts';
import { assertGlobalsShape, planGlobals } from '../src/core/globalRoles.ts';
import { planServerDatabases } from '../src/core/serverDatabases.ts';

/** A cluster of its own for a test: a server backup takes every database there is. */
async function startCluster(prefix: string): Promise<{ server: EmbeddedInstance; home: string; stop(): Promise<void> }> {
  const home = await temporaryHome(prefix);
  const server = await ensureEmbeddedPostgres(home);
  return {
    server,
    home,
    async stop() {
      await stopEmbeddedPostgres(home, { mode: 'immediate' }).catch(() => {});
      await fs.rm(home, { recursive: true, force: true });
    },
  };
}

/** The server's URL without a database: what `--server-url` and a server restore's `--to` take. */
function serverUrl(server: EmbeddedInstance): string {
  const url = new URL(server.url());
  url.pathname = '/';
  return url.toString();
}

async function runEvents(catalog: TestCatalog, runId: string): Promise<Array<{ kind: string; message: string }>> {
  return adminQuery<{ kind: string; message: string }>('select kind, message from backstop.run_events where run_id = $1 order by id', [runId], catalog.url);
}

/** Roles that own objects and hold grants, memberships and settings; three databases of different kinds. */
async function populate(server: EmbeddedInstance): Promise<void> {
  const on = (database: string, sql: string) => adminQuery(sql, [], server.url(database));
  await on(
    'postgres',
    `create role app_owner login password 'owner-secret' connection limit 20;
     create role app_reader nologin;
     create role app_writer login password 'writer-secret' in role app_reader;
     create role auditor nologin createdb;
     grant app_reader to auditor with admin option;
     alter role app_owner set work_mem = '8MB';
     alter role app_reader set search_path = app, public;`,
  );
  // CREATE DATABASE refuses to run in a transaction, which a multi-statement query is.
  for (const database of ['shop', 'reports', 'media']) await on('postgres', `create database ${database} owner app_owner`);
  await on(
    'shop',
    `alter database shop set default_statistics_target = 200;
     alter role app_writer in database shop set statement_timeout = '5s';
     revoke connect on database shop from public;
     grant connect on database shop to app_reader;
     set role app_owner;
     create schema app;
     create table app.measurements (id bigserial primary key, at date not null, reading numeric);
     create table app.measurements_2025 (check (at >= '2025-01-01' and at < '2026-01-01')) inherits (app.measurements);
     create table app.measurements_2026 (check (at >= '2026-01-01' and at < '2027-01-01')) inherits (app.measurements);
     insert into app.measurements (at, reading) select '2024-06-01'::date + i % 100, i from generate_series(1, 300) i;
     insert into app.measurements_2025 (at, reading) select '2025-01-01'::date + i % 300, i * 2 from generate_series(1, 500) i;
     insert into app.measurements_2026 (at, reading) select '2026-01-01'::date + i % 300, i * 3 from generate_series(1, 700) i;
     grant usage on schema app to app_reader;
     grant select on all tables in schema app to app_reader;
     grant insert, update on app.measurements_2026 to app_writer;
     grant usage on sequence app.measurements_id_seq to app_writer;`,
  );
  await on(
    'reports',
    `set role app_owner;
     create table sales (id int primary key, region text, amount numeric);
     insert into sales select i, 'region-' || (i % 7), i * 1.25 from generate_series(1, 2000) i;
     create materialized view sales_by_region as select region, sum(amount) as total, count(*) as n from sales group by region;
     create materialized view sales_pending as select * from sales where amount > 100 with no data;
     grant select on sales_by_region to app_reader;`,
  );
  await on(
    'media',
    `set role app_owner;
     create table images (id int primary key, name text, data oid);
     insert into images select i, 'image-' || i, lo_from_bytea(0, decode(repeat(md5(i::text), 40 + i), 'hex')) from generate_series(1, 12) i;
     do $$ begin execute format('grant select on large object %s to app_reader', (select min(data) from images)); end $$;`,
  );
}

describe('server targets: a whole server, exactly restored', () => {
  let catalog: TestCatalog;
  let source: Awaited<ReturnType<typeof startCluster>>;
  let destination: Awaited<ReturnType<typeof startCluster>>;
  let storeDir: string;
  let env: Record<string, string>;

  before(async () => {
    catalog = await createTestCatalog();
    source = await startCluster('backstop-server-source-');
    destination = await startCluster('backstop-server-destination-');
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-server-store-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres' };
    await populate(source.server);
  });
  after(async () => {
    await source?.stop();
    await destination?.stop();
    await catalog?.close();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('backs up every database and the roles, and restores them into an empty server equal to the source', async () => {
    const added = await runCli(['target', 'add', 'whole', '--server-url', serverUrl(source.server), '--jobs', '2', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    const target = JSON.parse(added.stdout);
    assert.equal(target.options.profile, 'server');
    assert.deepEqual(target.options.server, { jobs: 2 });

    // Created after the target was added: the next backup takes it all the same.
    await adminQuery('create database late owner app_owner', [], source.server.url());
    await adminQuery(`set role app_owner; create table notes (id serial primary key, body text); insert into notes (body) values ('first'), ('second');`, [], source.server.url('late'));

    const queued = await runCli(['trigger', 'whole', '--json'], env);
    assert.equal(queued.code, 0, queued.stderr);
    const runId = JSON.parse(queued.stdout).id as string;
    const ran = await runCli(['run', runId, '--json'], env);
    assert.equal(ran.code, 0, ran.stderr);
    const run = JSON.parse(ran.stdout);
    assert.equal(run.status, 'succeeded', JSON.stringify(run.error));

    // One manifest, a globals file and one archive per database, each with its checksum and rows.
    const prefix = path.join(storeDir, run.artifact.prefix);
    const manifest = JSON.parse(await fs.readFile(path.join(prefix, 'manifest.json'), 'utf8'));
    assert.equal(manifest.profile, 'server');
    assert.deepEqual(manifest.databases.map((database: { name: string }) => database.name).sort(), ['late', 'media', 'postgres', 'reports', 'shop']);
    assert.deepEqual(manifest.globals, { file: 'globals.sql.zst', passwords: true });
    for (const file of manifest.files) assert.match(file.sha256, /^[0-9a-f]{64}$/);
    assert.equal(manifest.files.filter((file: { role: string }) => file.role === 'dump').length, 5);
    const rows = (database: string, table: string) =>
      manifest.tables.find((t: { database: string; schema: string; name: string }) => t.database === database && `${t.schema}.${t.name}` === table)?.rows;
    assert.equal(rows('shop', 'app.measurements'), 300, 'the parent counts its own rows only');
    assert.equal(rows('shop', 'app.measurements_2026'), 700);
    assert.equal(rows('late', 'public.notes'), 2);
    assert.deepEqual((await filesUnder(prefix)).length, manifest.files.length + 1);
    const backupEvents = await runEvents(catalog, runId);
    assert.ok(
      backupEvents.some((event) => event.kind === 'server_databases' && /template0 \(a template\)/.test(event.message)),
      JSON.stringify(backupEvents),
    );

    const restored = await runCli(['restore', runId, '--to', serverUrl(destination.server), '--jobs', '2', '--json'], env);
    assert.equal(restored.code, 0, restored.stderr);
    const outcome = JSON.parse(restored.stdout);
    assert.equal(outcome.status, 'restored');
    assert.deepEqual([...outcome.databases].sort(), ['late', 'media', 'postgres', 'reports', 'shop']);

    const expected = await serverFingerprint(serverUrl(source.server), { skipRoles: ['postgres'] });
    const actual = await serverFingerprint(serverUrl(destination.server), { skipRoles: ['postgres'] });
    assert.deepEqual(Object.keys(actual.databases).sort(), Object.keys(expected.databases).sort());
    for (const name of Object.keys(expected.databases)) assert.deepEqual(actual.databases[name], expected.databases[name], `database ${name}`);
    assert.deepEqual(actual.roles, expected.roles);
    assert.deepEqual(actual.memberships, expected.memberships);
    // What the fingerprint must have seen for the comparison to mean anything.
    assert.equal(expected.databases.media!.largeObjects.length, 12);
    assert.ok(expected.databases.shop!.tables['app.measurements_2025']!.rows === 500);
    assert.ok(
      expected.roles.some(
        (role) => (role as { rolname: string; rolpassword: string | null }).rolname === 'app_owner' && (role as { rolpassword: string }).rolpassword?.startsWith('SCRAM'),
      ),
    );

    const restoreEvents = (await runEvents(catalog, runId)).map((event) => event.kind);
    assert.ok(restoreEvents.includes('restore_globals_done'));
    assert.equal(restoreEvents.filter((kind) => kind === 'restore_database_done').length, 5);

    // The databases now exist: without consent nothing is touched, with it only the one named is replaced.
    const refused = await runCli(['restore', runId, '--to', serverUrl(destination.server)], env);
    assert.equal(refused.code, 5, refused.stderr);
    // `postgres` is empty on both sides: created again without asking, as on a new server.
    assert.match(refused.stderr, /already has database "late", "media", "reports", "shop"\./);
    await adminQuery('delete from notes', [], destination.server.url('late'));
    const replaced = await runCli(['restore', runId, '--to', serverUrl(destination.server), '--databases', 'late', '--replace-databases', 'late'], env);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.deepEqual(await adminQuery('select body from notes order by id', [], destination.server.url('late')), [{ body: 'first' }, { body: 'second' }]);

    // A drill restores every database into scratch and checks each.
    const drill = await runCli(['verify', runId, '--json'], env);
    assert.equal(drill.code, 0, drill.stderr);
    const drillRun = JSON.parse(drill.stdout);
    assert.equal(drillRun.status, 'succeeded', JSON.stringify(drillRun.error));
    const drillEvents = await runEvents(catalog, drillRun.id);
    assert.equal(drillEvents.filter((event) => event.kind === 'verify_database_ok').length, 5, JSON.stringify(drillEvents));
    assert.ok(drillEvents.some((event) => event.kind === 'verify_globals_ok'));
  });

  it('fails the run naming the database that failed, keeps nothing, and says when passwords could not be read', async () => {
    // A role that may read reports' tables but not pg_authid (as on a managed service); "locked" refuses it a connection.
    await adminQuery(`create role backup_user login password 'backup-secret'`, [], source.server.url());
    await adminQuery('grant select on sales, sales_by_region, sales_pending to backup_user', [], source.server.url('reports'));
    await adminQuery('create database locked', [], source.server.url());
    await adminQuery('revoke connect on database locked from public', [], source.server.url());
    const url = new URL(serverUrl(source.server));
    url.username = 'backup_user';
    url.password = 'backup-secret';
    const added = await runCli(['target', 'add', 'as-reader', '--server-url', url.toString(), '--databases', 'reports,locked', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    assert.deepEqual(JSON.parse(added.stdout).options.server, { databases: ['reports', 'locked'] });
    const queued = await runCli(['trigger', 'as-reader', '--json'], env);
    const runId = JSON.parse(queued.stdout).id as string;
    const ran = await runCli(['run', runId, '--json'], env);
    const run = JSON.parse(ran.stdout);
    assert.equal(run.status, 'failed', ran.stderr);
    assert.match(run.error.message, /^Database "locked": /);
    const events = await runEvents(catalog, runId);
    assert.ok(
      events.some((event) => event.kind === 'globals_without_passwords'),
      JSON.stringify(events),
    );
    // The globals and reports' archive were stored before locked failed: the failed attempt keeps none of them.
    assert.ok(
      events.some((event) => event.kind === 'dump_stored' && /globals\.sql/.test(event.message)),
      JSON.stringify(events),
    );
    assert.deepEqual(await filesUnder(path.join(storeDir, 'as-reader')).catch(() => []), []);
  });
});

describe('which databases a server backup takes', () => {
  const listed = [
    { name: 'postgres', allowConnections: true, isTemplate: false },
    { name: 'template1', allowConnections: true, isTemplate: true },
    { name: 'template0', allowConnections: false, isTemplate: true },
    { name: 'app', allowConnections: true, isTemplate: false },
    { name: 'closed', allowConnections: false, isTemplate: false },
    { name: 'scratch', allowConnections: true, isTemplate: false },
  ];

  it('takes every database but templates, closed ones and exclusions, saying why', () => {
    assert.deepEqual(planServerDatabases(listed, { excludeDatabases: ['scratch'] }), {
      dump: ['postgres', 'app'],
      skipped: [
        { name: 'template1', reason: 'a template' },
        { name: 'template0', reason: 'a template' },
        { name: 'closed', reason: 'refuses connections (datallowconn = false)' },
        { name: 'scratch', reason: 'excluded by the target' },
      ],
    });
  });

  it('takes only the databases named, and refuses names it cannot dump', () => {
    assert.deepEqual(planServerDatabases(listed, { databases: ['scratch', 'app'] }).dump, ['app', 'scratch']);
    assert.throws(() => planServerDatabases(listed, { databases: ['app', 'gone', 'closed'] }), /no database "gone"; "closed" refuses connections/);
  });
});

describe("a server backup's globals", () => {
  const globals = [
    '\\restrict abc123',
    'SET default_transaction_read_only = off;',
    'CREATE ROLE app;',
    "ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:x';",
    'CREATE ROLE "Odd ""name""";',
    'ALTER ROLE "Odd ""name""" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;',
    "ALTER ROLE app SET work_mem TO '8MB';",
    'GRANT "Odd ""name""" TO app GRANTED BY postgres;',
    '\\unrestrict abc123',
    '',
  ].join('\n');
  const flags = (login: boolean) => ({ SUPERUSER: false, INHERIT: true, CREATEROLE: false, CREATEDB: false, LOGIN: login, REPLICATION: false, BYPASSRLS: false });

  it('keeps roles the server has with the same attributes, and refuses ones that differ', () => {
    const plan = planGlobals(globals, new Map([['app', flags(true)]]));
    assert.deepEqual(plan.existing, ['app']);
    assert.deepEqual(plan.created, ['Odd "name"']);
    assert.doesNotMatch(plan.sql, /CREATE ROLE app;|ALTER ROLE app WITH/);
    assert.match(plan.sql, /ALTER ROLE app SET work_mem/);
    assert.throws(() => planGlobals(globals, new Map([['app', flags(false)]])), /"app" \(LOGIN in the backup\)/);
  });

  it('accepts what pg_dumpall writes and nothing else', () => {
    assertGlobalsShape(globals, 'globals.sql');
    assert.throws(() => assertGlobalsShape(globals.replace('CREATE ROLE app;', 'CREATE ROLE app; DROP DATABASE shop;'), 'globals.sql'), /line 3 /);
    assert.throws(() => assertGlobalsShape(`${globals}\\! touch /tmp/x\n`, 'globals.sql'), /line 10 /);
    assert.throws(() => assertGlobalsShape(globals.replace('SET default', 'DROP ROLE app;\nSET default'), 'globals.sql'), /line 2 /);
    assert.throws(() => assertGlobalsShape(globals.replace("TO '8MB';", "TO '8MB\\';"), 'globals.sql'), /line 7 /);
  });
});
