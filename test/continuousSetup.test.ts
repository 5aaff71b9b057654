import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compareLsn } from '../src/core/changeSegment.ts';
import { withDatabase } from '../src/core/databaseUrl.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { runCli } from './support/cli.ts';
import { startTestServer } from './support/server.ts';
import { adminQuery, adminUrl, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

/**
 * Continuous targets' setup and lifecycle through the real CLI, against real PostgreSQL
 * servers (one with wal_level = logical, one started here with wal_level = replica), real
 * pg_dump and a real pg_recvlogical holding the slot as a streamer would.
 */

const TEST_TIMEOUT = { timeout: 300_000 };

describe('continuous targets: setup, base backup, window, disable and delete', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let workDir: string;
  let storeDir: string;
  let env: Record<string, string>;
  const roles: string[] = [];
  const children: ChildProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('contsrc');
    await adminQuery(
      `create table items (id int primary key, name text);
       insert into items select g, 'item ' || g from generate_series(1, 10) g;
       create table logs (at timestamptz default now(), line text);
       insert into logs (line) values ('first');
       create table events (id int, body text);
       alter table events replica identity full;`,
      [],
      source.url,
    );
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-continuous-'));
    storeDir = path.join(workDir, 'store');
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (source) {
      // A database with a logical slot cannot be dropped: whatever a failed test left goes first.
      await adminQuery('select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active', [source.name]).catch(() => {});
      await source.drop();
    }
    for (const role of roles) await adminQuery(`drop role if exists ${role}`);
    await catalog?.close();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const cli = (args: string[]) => runCli(args, env);
  const json = async (args: string[]) => {
    const result = await cli([...args, '--json']);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout);
  };
  const published = async (name: string) =>
    (await adminQuery<{ table: string }>("select schemaname || '.' || tablename as table from pg_publication_tables where pubname = $1 order by 1", [name], source.url)).map(
      (row) => row.table,
    );
  const slotOf = async (name: string) =>
    (await adminQuery<{ plugin: string; temporary: boolean; active: boolean }>('select plugin, temporary, active from pg_replication_slots where slot_name = $1', [name]))[0];
  const publicationExists = async (name: string) => (await adminQuery('select 1 from pg_publication where pubname = $1', [name], source.url)).length > 0;
  const stream = async (targetName: string) =>
    (
      await catalog.pool.query<{ state: string; stopped_reason: string | null; unprotected_tables: Array<{ table: string; fix: string }> }>(
        'select s.state, s.stopped_reason, s.unprotected_tables from backstop.continuous_streams s join backstop.targets t on t.id = s.target_id where t.name = $1',
        [targetName],
      )
    ).rows[0];

  let slot = '';
  let baseLsn = '';

  it('publishes only the tables it can follow safely, makes the slot, and the base meets the stream at its LSN', TEST_TIMEOUT, async () => {
    const added = await json(['target', 'add', 'cont', '--database-url', source.url, '--continuous']);
    slot = added.continuous.slot;
    assert.match(slot, /^backstop_[0-9a-f]{32}$/);
    assert.equal(added.publishedTables, 2);
    assert.deepEqual(
      added.unprotectedTables.map((table: { schema: string; table: string }) => `${table.schema}.${table.table}`),
      ['public.logs'],
    );
    assert.deepEqual(await published(slot), ['public.events', 'public.items'], 'the table without a key is never published');
    assert.deepEqual(await slotOf(slot), { plugin: 'pgoutput', temporary: false, active: false });
    assert.equal((await stream('cont'))!.state, 'starting');
    assert.match((await stream('cont'))!.unprotected_tables[0]!.fix, /REPLICA IDENTITY FULL/);
    // The application's UPDATE and DELETE on the table left out still work.
    await adminQuery("update logs set line = 'changed'; delete from logs where line = 'nothing'", [], source.url);

    // Committed after the slot, before the base: in the base and in the stream (a restore skips it by LSN).
    await adminQuery("insert into items values (101, 'before the base')", [], source.url);
    const run = await json(['run', added.baseRunId]);
    assert.equal(run.status, 'succeeded', JSON.stringify(run.error));
    const { rows } = await catalog.pool.query<{ base_lsn: string; base_slot: string; prefix: string }>(
      "select base_lsn::text, base_slot, artifact->>'prefix' as prefix from backstop.runs where id = $1",
      [added.baseRunId],
    );
    baseLsn = rows[0]!.base_lsn;
    assert.equal(rows[0]!.base_slot, slot);
    const manifest = JSON.parse(await fs.readFile(path.join(storeDir, rows[0]!.prefix, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest.continuous, { slot, consistentLsn: baseLsn, tables: ['public.events', 'public.items'] });
    assert.equal(manifest.tables.find((table: { name: string }) => table.name === 'items').rows, 11);
    assert.equal((await stream('cont'))!.state, 'streaming');
    assert.equal((await slotOf(slot))?.temporary, false);
    assert.equal((await adminQuery("select 1 from pg_replication_slots where slot_name like $1::text || '_b%'", [slot])).length, 0, 'the temporary slot went with its connection');

    // Committed after the base: not in it, in the stream after its LSN.
    await adminQuery("insert into items values (102, 'after the base'); insert into logs (line) values ('not published')", [], source.url);
    const changes = await adminQuery<{ lsn: string; data: Buffer }>(
      "select lsn::text, data from pg_logical_slot_peek_binary_changes($1::name, null, null, 'proto_version', '1', 'publication_names', $1::text)",
      [slot],
      source.url,
    );
    const inserts = changes.filter((change) => change.data[0] === 'I'.charCodeAt(0));
    const before = inserts.filter((change) => compareLsn(change.lsn, baseLsn) < 0);
    const afterBase = inserts.filter((change) => compareLsn(change.lsn, baseLsn) > 0);
    assert.deepEqual(
      before.map((change) => change.data.includes('before the base')),
      [true],
    );
    assert.deepEqual(
      afterBase.map((change) => change.data.includes('after the base')),
      [true],
      'the row inserted after the base is in the stream, after its LSN, and the unpublished table is not',
    );
  });

  it('shows the restorable window and its limits', TEST_TIMEOUT, async () => {
    const shown = await json(['window', 'cont']);
    const window = shown.continuity.window;
    assert.equal(window.from.lsn, baseLsn);
    assert.deepEqual(window.to.lsn, baseLsn, 'no segment stored yet: the window ends at the base');
    assert.deepEqual(
      window.limits.map((limit: { kind: string }) => limit.kind),
      ['unprotected_tables', 'base_only'],
    );
    // A segment as the streamer records it, chained on from the base, extends the window.
    const { rows } = await catalog.pool.query<{ id: string; end: string }>(
      "select r.id, (r.base_lsn + 4096)::text as end from backstop.runs r join backstop.targets t on t.id = r.target_id where t.name = 'cont' and base_lsn is not null",
    );
    await catalog.pool.query(
      `insert into backstop.change_segments (target_id, slot_name, generation, start_lsn, end_lsn, first_commit_at, last_commit_at, transactions, manifest_key, size, manifest)
       select t.id, $1, 1, $2::pg_lsn, $3::pg_lsn, now(), now(), 1, 'cont/continuous/x.json', 10, '{"schemaChanges": ["public.items"]}'
       from backstop.targets t where t.name = 'cont'`,
      [slot, baseLsn, rows[0]!.end],
    );
    const extended = (await json(['window', 'cont'])).continuity.window;
    assert.equal(extended.to.lsn, rows[0]!.end);
    assert.deepEqual(
      extended.limits.map((limit: { kind: string }) => limit.kind),
      ['unprotected_tables', 'schema_change', 'base_only'],
    );
    // The API answers the same, to a viewer; a pooler is refused there in the same words.
    // No streamer in this server: the window must stay the one the rows above describe.
    const api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_CONTINUOUS_STREAMS: '0' } });
    try {
      const answered = await api.request('GET', '/api/v1/targets/cont/window', { token: api.tokens.viewer });
      assert.equal(answered.status, 200, answered.text);
      // The same window; its RPO is a live figure, only ever older.
      assert.deepEqual({ ...answered.json.continuity.window, rpoSeconds: 0 }, { ...extended, rpoSeconds: 0 });
      assert.ok(answered.json.continuity.window.rpoSeconds >= extended.rpoSeconds);
      const target = await api.request('GET', '/api/v1/targets/cont', { token: api.tokens.viewer });
      assert.equal(target.json.continuous.slot, slot);
      assert.equal(target.json.continuity.state, 'streaming');
      assert.equal(target.json.continuity.unprotectedTables[0].table, 'logs');
      const pooled = await api.request('POST', '/api/v1/targets', {
        token: api.tokens.admin,
        body: { name: 'pooled', databaseUrl: 'postgres://app:pw@127.0.0.1:6543/app', continuous: {} },
      });
      assert.equal(pooled.status, 422, pooled.text);
      assert.equal(pooled.json.error.code, 'CONTINUOUS_REFUSED');
      assert.equal(pooled.json.error.field, 'continuous');
      assert.match(pooled.json.error.message, /direct connection/);
    } finally {
      await api.close();
    }
    const text = await cli(['target', 'show', 'cont']);
    assert.match(text.stdout, /continuity: streaming/);
    assert.match(text.stdout, /not continuously protected: public\.logs: .*Fix: ALTER TABLE public\.logs/);
    assert.match(text.stdout, /limit: the shape of public\.items changed/);
  });

  it('turning it off ends the session streaming the slot and drops the slot and the publication', TEST_TIMEOUT, async () => {
    const bin = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    const streamer = spawn(
      path.join(bin, 'pg_recvlogical'),
      ['-d', source.url, '--slot', slot, '--start', '-f', '/dev/null', '-o', 'proto_version=1', '-o', `publication_names=${slot}`, '--no-loop'],
      {
        stdio: 'ignore',
      },
    );
    children.push(streamer);
    const exited = new Promise((resolve) => streamer.on('exit', resolve));
    await waitFor('pg_recvlogical to stream the slot', async () => (await slotOf(slot))?.active);

    // A new database would leave the slot and the publication behind: refused, nothing changed.
    const storedUrl = async () => (await catalog.pool.query<{ url: string }>("select database_url as url from backstop.targets where name = 'cont'")).rows[0]!.url;
    const urlBefore = await storedUrl();
    const elsewhere = withDatabase(source.url, 'postgres');
    const moved = await cli(['target', 'update', 'cont', '--database-url', elsewhere]);
    assert.equal(moved.code, 2, moved.stderr);
    assert.match(moved.stderr, /CONTINUOUS_REFUSED/);
    assert.match(moved.stderr, /Turn continuity off first \(`backstop target update cont --no-continuous`.*change the URL, then turn it on again/);
    const api = await startTestServer({ catalogUrl: catalog.url });
    try {
      const refused = await api.request('PATCH', '/api/v1/targets/cont', { token: api.tokens.admin, body: { databaseUrl: elsewhere } });
      assert.equal(refused.status, 422, refused.text);
      assert.equal(refused.json.error.code, 'CONTINUOUS_REFUSED');
    } finally {
      await api.close();
    }
    assert.equal(await storedUrl(), urlBefore, 'the URL is unchanged');
    assert.deepEqual(await slotOf(slot), { plugin: 'pgoutput', temporary: false, active: true }, 'the slot is still there, streaming');
    assert.equal(await publicationExists(slot), true);
    // The same database by another URL (here a parameter more) changes nothing of that: allowed.
    const sameDatabase = `${source.url}${source.url.includes('?') ? '&' : '?'}application_name=backstop-test`;
    assert.equal((await cli(['target', 'update', 'cont', '--database-url', sameDatabase])).code, 0);

    const updated = await json(['target', 'update', 'cont', '--no-continuous']);
    assert.equal(updated.continuous, null);
    assert.equal(await slotOf(slot), undefined);
    assert.equal(await publicationExists(slot), false);
    await exited;
    const stopped = await stream('cont');
    assert.equal(stopped!.state, 'stopped');
    assert.match(stopped!.stopped_reason!, /turned off/);
    // What was stored stays restorable: the window still answers, its stream stopped.
    const window = (await json(['window', 'cont'])).continuity.window;
    assert.equal(window.from.lsn, baseLsn);
    assert.ok(window.limits.some((limit: { kind: string }) => limit.kind === 'stream_stopped'));
  });

  it('turned on again and deleted, the target drops its slot and publication', TEST_TIMEOUT, async () => {
    const again = await json(['target', 'update', 'cont', '--continuous', '--tables', 'public.items', '--max-rpo', '60']);
    // A stream begun again has a slot, and so a folder of the change archive, of its own.
    const first = slot;
    slot = again.continuous.slot;
    assert.match(slot, new RegExp(`^${first}_[0-9a-f]{8}$`));
    assert.equal(await slotOf(first), undefined);
    assert.equal((await json(['target', 'show', 'cont'])).continuous.slot, slot);
    assert.equal(again.continuous.maxRpoSeconds, 60);
    assert.deepEqual(again.continuous.tables, ['public.items']);
    assert.deepEqual(await published(slot), ['public.items']);
    assert.ok(await slotOf(slot));
    assert.equal((await stream('cont'))!.state, 'starting');
    assert.equal((await json(['run', again.baseRunId])).status, 'succeeded');
    // Run again on a continuous target: the publication is re-planned, the same slot goes on.
    const restartLsn = (await adminQuery<{ lsn: string }>('select restart_lsn::text as lsn from pg_replication_slots where slot_name = $1', [slot]))[0]!.lsn;
    const replanned = await json(['target', 'update', 'cont', '--continuous', '--tables', 'public.items,public.events']);
    assert.equal(replanned.baseRunId, undefined, 'no new slot, so no new base is needed');
    assert.deepEqual(await published(slot), ['public.events', 'public.items']);
    assert.equal((await adminQuery<{ lsn: string }>('select restart_lsn::text as lsn from pg_replication_slots where slot_name = $1', [slot]))[0]!.lsn, restartLsn);
    assert.equal((await stream('cont'))!.state, 'streaming');
    const deleted = await cli(['target', 'delete', 'cont']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(await slotOf(slot), undefined);
    assert.equal(await publicationExists(slot), false);
  });

  it('a new database URL with continuity turned off in the same change: the slot and publication go from the old database', TEST_TIMEOUT, async () => {
    const added = await json(['target', 'add', 'moving', '--database-url', source.url, '--continuous', '--tables', 'public.items']);
    const movingSlot: string = added.continuous.slot;
    assert.ok(await slotOf(movingSlot));
    const other = await createTestDatabase('contnext');
    try {
      const moved = await json(['target', 'update', 'moving', '--database-url', other.url, '--no-continuous']);
      assert.equal(moved.continuous, null);
      assert.equal(await slotOf(movingSlot), undefined, 'dropped from the database it was in');
      assert.equal(await publicationExists(movingSlot), false);
      assert.equal((await cli(['cancel', added.baseRunId])).code, 0);
      // On again in the new database: a new slot there, whose segments never mix with the old ones'.
      await adminQuery('create table items (id int primary key)', [], other.url);
      const resumed = await json(['target', 'update', 'moving', '--continuous']);
      const resumedSlot: string = resumed.continuous.slot;
      assert.match(resumedSlot, new RegExp(`^${movingSlot}_[0-9a-f]{8}$`));
      assert.equal((await adminQuery('select 1 from pg_replication_slots where slot_name = $1 and database = $2', [resumedSlot, other.name])).length, 1);
      assert.equal((await cli(['cancel', resumed.baseRunId])).code, 0);
      const deleted = await cli(['target', 'delete', 'moving']);
      assert.equal(deleted.code, 0, deleted.stderr);
    } finally {
      await other.drop();
    }
  });

  it('refuses a role without replication, a pooler URL and tables it cannot follow, creating nothing', TEST_TIMEOUT, async () => {
    const role = `norepl_${process.pid}`;
    roles.push(role);
    await adminQuery(`create role ${role} login password 'secret-pw'`);
    const url = new URL(source.url);
    url.username = role;
    url.password = 'secret-pw';
    // Slots of this source database only: other test files make slots on the same server.
    const slotsBefore = (await adminQuery('select count(*)::int as count from pg_replication_slots where database = $1', [source.name]))[0]!.count;

    const norepl = await cli(['target', 'add', 'norepl', '--database-url', url.toString(), '--continuous']);
    assert.equal(norepl.code, 2, norepl.stderr);
    assert.match(norepl.stderr, new RegExp(`--continuous: .*the role ${role} may not use replication: run ALTER ROLE ${role} WITH REPLICATION`));

    for (const pooler of ['postgres://app:pw@127.0.0.1:6543/app', 'postgres://postgres.abcdefghij:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres']) {
      const refused = await cli(['target', 'add', 'pooled', '--database-url', pooler, '--continuous']);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /logical replication needs a direct connection .*db\.<project-ref>\.supabase\.co:5432/);
      assert.doesNotMatch(refused.stderr, /Cannot connect/, 'refused by the URL, before any connection');
    }

    const noKey = await cli(['target', 'add', 'nokey', '--database-url', source.url, '--continuous', '--tables', 'public.logs']);
    assert.equal(noKey.code, 2, noKey.stderr);
    assert.match(noKey.stderr, /no table can be followed safely: public\.logs .*REPLICA IDENTITY FULL/);

    const server = await cli(['target', 'add', 'whole', '--server-url', withDatabase(adminUrl(), 'postgres'), '--continuous']);
    assert.equal(server.code, 2, server.stderr);
    assert.match(server.stderr, /--continuous: .*a whole server .*cannot be continuous/);

    const names = (await catalog.pool.query<{ name: string }>('select name from backstop.targets')).rows.map((row) => row.name);
    assert.deepEqual(names, [], 'no target was stored');
    assert.equal((await adminQuery('select count(*)::int as count from pg_replication_slots where database = $1', [source.name]))[0]!.count, slotsBefore, 'no slot was made');
    assert.equal((await adminQuery("select count(*)::int as count from pg_publication where pubname like 'backstop_%'", [], source.url))[0]!.count, 0);
  });
});

describe('continuous targets on a server with wal_level = replica', () => {
  let home: string;
  let catalog: TestCatalog;

  before(async () => {
    catalog = await createTestCatalog();
    home = await temporaryHome('backstop-replica-');
    const server = await ensureEmbeddedPostgres(home);
    // postgresql.auto.conf is read last: it wins over the embedded server's own wal_level.
    await adminQuery('alter system set wal_level = replica', [], server.url());
    await stopEmbeddedPostgres(home);
  });

  after(async () => {
    if (home) {
      await stopEmbeddedPostgres(home, { mode: 'immediate' }).catch(() => {});
      await fs.rm(home, { recursive: true, force: true });
    }
    await catalog?.close();
  });

  it('refuses with the setting to change and creates nothing', TEST_TIMEOUT, async () => {
    const server = await ensureEmbeddedPostgres(home);
    assert.equal((await adminQuery<{ level: string }>("select current_setting('wal_level') as level", [], server.url()))[0]!.level, 'replica');
    await adminQuery('create table items (id int primary key)', [], server.url());
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-replica-store-'));
    try {
      const refused = await runCli(['target', 'add', 'replica', '--database-url', server.url(), '--continuous'], {
        BACKSTOP_DATABASE_URL: catalog.url,
        BACKSTOP_STORE: `file://${workDir}`,
      });
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /wal_level is replica, and logical decoding needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL/);
      assert.match(refused.stderr, /rds\.logical_replication = 1/);
      assert.equal((await catalog.pool.query('select 1 from backstop.targets')).rowCount, 0);
      assert.equal((await adminQuery('select 1 from pg_publication', [], server.url())).length, 0);
    } finally {
      await fs.rm(workDir, { recursive: true, force: true });
    }
  });
});
