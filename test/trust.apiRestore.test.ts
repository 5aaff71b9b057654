/**
 * An API restore runs a backup's code (CHECKs, defaults, index expressions) as the destination
 * URL's role, and a backup is what its source database's owner made it. Attacked for real: a
 * backup whose CHECK calls COPY ... TO PROGRAM, restored through a running server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from './support/cli.ts';
import { adminQuery, createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

const TEST = { timeout: 120_000 };

describe('API restores never run a backup’s code as a privileged role unless it is named', { timeout: 400_000 }, () => {
  let catalog: TestCatalog;
  let api: TestServer;
  let storeDir: string;
  let markerDir: string;
  let marker: string;
  let hostileId: string;
  let benignId: string;
  const drops: Array<() => Promise<void>> = [];

  before(async () => {
    catalog = await createTestCatalog();
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-store-'));
    // Writable by whoever the attack would run as: the database server's user.
    markerDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-marker-'));
    await fs.chmod(markerDir, 0o777);
    marker = path.join(markerDir, 'restore-check-ran');
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
    const backup = async (url: string, target: string) => {
      const result = await runCli(['backup', url, '--target', target, '--json'], env);
      assert.equal(result.code, 0, result.stderr);
      return (JSON.parse(result.stdout) as { id: string }).id;
    };

    const source = await database(() => createTestDatabase('hostile'));
    // A table owner's function in a CHECK constraint: it runs for every row a restore loads, as
    // the role restoring. It does nothing in its own database, so the backup is clean.
    await adminQuery(
      `create function public.innocent(v int) returns boolean language plpgsql as $fn$
       begin
         if current_database() <> '${source.name}' then
           execute $cmd$copy (select 1) to program 'touch ${marker}'$cmd$;
         end if;
         return v > 0;
       end $fn$;
       create table public.orders (id int primary key, amount int check (public.innocent(amount)));
       insert into public.orders select g, g from generate_series(1, 50) g;`,
      [],
      source.url,
    );
    hostileId = await backup(source.url, 'hostile');
    benignId = await backup((await database(() => createSampleDatabase(50))).url, 'benign');
    api = await startTestServer({ catalogUrl: catalog.url });
  });

  after(async () => {
    await api?.close();
    for (const drop of drops.reverse()) await drop().catch(() => {});
    await catalog?.close();
    for (const dir of [storeDir, markerDir]) if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  async function database(make: () => Promise<TestDatabase>): Promise<TestDatabase> {
    const made = await make();
    drops.push(made.drop);
    return made;
  }

  /** A login role, dropped after the tests (after the databases it owns). */
  async function loginRole(prefix: string, grants = ''): Promise<{ name: string; password: string }> {
    const name = `${prefix}_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await adminQuery(`create role ${name} login password '${password}'; ${grants.replaceAll('ROLE', name)}`);
    drops.unshift(async () => void (await adminQuery(`drop role if exists ${name}`)));
    return { name, password };
  }

  /** An empty destination database, and its URL as `role` when one is given. */
  async function destination(role?: { name: string; password: string }): Promise<{ db: TestDatabase; url: string }> {
    const db = await database(() => createTestDatabase('dest'));
    if (!role) return { db, url: db.url };
    await adminQuery(`alter database ${db.name} owner to ${role.name}`);
    const url = new URL(db.url);
    url.username = role.name;
    url.password = role.password;
    return { db, url: url.toString() };
  }

  const exists = (file: string) =>
    fs.access(file).then(
      () => true,
      () => false,
    );
  const tablesIn = async (url: string) =>
    (await adminQuery<{ count: number }>(`select count(*)::int as count from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`, [], url))[0]!.count;
  const eventsOf = async (runId: string) =>
    (await api.request('GET', `/api/v1/runs/${runId}/events`, { token: api.tokens.viewer })).json.items as Array<{ kind: string; message: string; data: Record<string, unknown> }>;
  const outcomeOf = (runId: string, before: number) =>
    waitFor('the restore to end', async () => (await eventsOf(runId)).slice(before).find((event) => event.kind === 'restored' || event.kind === 'restore_failed'), 60_000);

  it('a superuser destination is refused (403, saying what to do); nothing runs, nothing is restored', TEST, async () => {
    const { db } = await destination();
    const before = (await eventsOf(hostileId)).length;
    for (const privilegedRole of [undefined, 'someone_else']) {
      const refused = await api.request('POST', `/api/v1/runs/${hostileId}/restore`, { body: { databaseUrl: db.url, noOwner: true, ...(privilegedRole ? { privilegedRole } : {}) } });
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.json.error.code, 'RESTORE_ROLE_PRIVILEGED');
      assert.match(refused.json.error.message, /"postgres", which is a superuser:/);
      assert.match(refused.json.error.message, /a role that owns the destination database and nothing more/);
      assert.match(refused.json.error.message, /"privilegedRole": "postgres"/);
      assert.equal(refused.text.includes(decodeURIComponent(new URL(db.url).password)), false, 'the answer holds the password');
    }
    assert.equal((await eventsOf(hostileId)).length, before, 'a refused restore started anyway');
    assert.equal(await exists(marker), false, 'the dump ran COPY TO PROGRAM during the restore');
    assert.equal(await tablesIn(db.url), 0, 'something was restored');
  });

  it('a role that can become privileged is refused too: a member of pg_execute_server_program or of a superuser role', TEST, async () => {
    const superRole = `trust_super_${randomBytes(4).toString('hex')}`;
    await adminQuery(`create role ${superRole} superuser nologin`);
    drops.unshift(async () => void (await adminQuery(`drop role if exists ${superRole}`)));
    for (const [grants, reason] of [
      ['grant pg_execute_server_program to ROLE', /a member of pg_execute_server_program/],
      [`grant ${superRole} to ROLE`, new RegExp(`a member of "${superRole}"`)],
    ] as const) {
      const role = await loginRole('trust_member', grants);
      const { url } = await destination(role);
      const refused = await api.request('POST', `/api/v1/runs/${hostileId}/restore`, { body: { databaseUrl: url, noOwner: true } });
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.json.error.code, 'RESTORE_ROLE_PRIVILEGED');
      assert.match(refused.json.error.message, reason);
      assert.equal(await tablesIn(url), 0);
    }
    assert.equal(await exists(marker), false);
  });

  it('as a role that owns the destination and nothing more, the restore runs and the dump’s code fails honestly', TEST, async () => {
    const owner = await loginRole('trust_owner');
    const { url } = await destination(owner);
    const before = (await eventsOf(hostileId)).length;
    const started = await api.request('POST', `/api/v1/runs/${hostileId}/restore`, { body: { databaseUrl: url, noOwner: true } });
    assert.equal(started.status, 202, started.text);
    const outcome = await outcomeOf(hostileId, before);
    assert.equal(outcome.kind, 'restore_failed', 'a restore whose CHECK could not run does not pass');
    assert.equal(outcome.data.code, 'RESTORE_FAILED');
    assert.match(outcome.message, /pg_execute_server_program|superuser/, 'the reason is the privilege the dump wanted');
    assert.equal(await exists(marker), false, 'the dump ran COPY TO PROGRAM during the restore');
    assert.equal(await tablesIn(url), 0, 'the failed restore left nothing behind (one transaction)');
  });

  it('a superuser named in privilegedRole is accepted', TEST, async () => {
    const { db } = await destination();
    const before = (await eventsOf(benignId)).length;
    const started = await api.request('POST', `/api/v1/runs/${benignId}/restore`, { body: { databaseUrl: db.url, privilegedRole: 'postgres' } });
    assert.equal(started.status, 202, started.text);
    const outcome = await outcomeOf(benignId, before);
    assert.equal(outcome.kind, 'restored', outcome.message);
    const rows = await adminQuery<{ count: number }>('select count(*)::int as count from orders', [], db.url);
    assert.equal(rows[0]!.count, 50);

    // Control: the attack is real. Accepted as a superuser, the hostile backup's CHECK leaves the marker.
    const { db: victim } = await destination();
    const mark = (await eventsOf(hostileId)).length;
    const accepted = await api.request('POST', `/api/v1/runs/${hostileId}/restore`, { body: { databaseUrl: victim.url, noOwner: true, privilegedRole: 'postgres' } });
    assert.equal(accepted.status, 202, accepted.text);
    await outcomeOf(hostileId, mark);
    assert.equal(await exists(marker), true, 'the refusal is what kept the marker away');
  });
});
