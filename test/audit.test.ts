import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BackstopError } from '../src/core/errors.ts';
import { pgErrorCode } from '../src/core/pgErrors.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { listAudit } from '../src/operations/listAudit.ts';
import { recordChannelChange, recordSignIn } from '../src/operations/recordAudit.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The audit trail, against a real catalog, real pg_dump/pg_restore and real processes: every
 * action of a person at the CLI and of a token at the API is recorded with who, from where
 * and how it ended; a password changed by a target update appears nowhere in it; and no role,
 * the catalog's owner and a superuser included, can change, delete or truncate an entry.
 */

const TEST_TIMEOUT = { timeout: 300_000 };
const INSUFFICIENT_PRIVILEGE = '42501';

interface Entry {
  id: number;
  at: string;
  actor: { kind: string; id?: string; name: string; role?: string; address: string | null; client: string };
  action: string;
  subject: string | null;
  outcome: string;
  errorCode: string | null;
  details: Record<string, unknown>;
}

/** A login role for the databases backed up and restored into, whose password the tests change. */
async function databaseRole(): Promise<{ name: string; url(database: TestDatabase, password: string): string; setPassword(password: string): Promise<void>; drop(): Promise<void> }> {
  const name = `audit_db_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create role ${name} login password 'unset' in role pg_read_all_data`);
  return {
    name,
    url(database, password) {
      const url = new URL(database.url);
      url.username = name;
      url.password = password;
      return url.toString();
    },
    setPassword: async (password) => {
      await adminQuery(`alter role ${name} password '${password}'`);
    },
    drop: async () => {
      await adminQuery(`drop role if exists ${name}`);
    },
  };
}

/** A password no test text could contain by chance. */
const secret = (label: string) => `${label}${randomBytes(9).toString('hex')}`;

/** The rows as the catalog stores them, as text: what a secret must not be found in. */
async function storedAuditText(url: string): Promise<string> {
  const rows = await adminQuery<{ row: string }>('select to_jsonb(a)::text as row from backstop.audit_log a order by id', [], url);
  return rows.map((row) => row.row).join('\n');
}

function assertNoSecret(text: string, secrets: string[], where: string): void {
  for (const value of secrets) assert.ok(!text.includes(value), `${where} holds a secret (${value.slice(0, 6)}…)`);
}

/**
 * What the CLI and API tests share: a catalog, a source database backed up as a role whose
 * password the test changes, a database to restore into owned by that role, a work folder.
 */
interface Fixture {
  catalog: TestCatalog;
  source: TestDatabase;
  restored: TestDatabase;
  role: Awaited<ReturnType<typeof databaseRole>>;
  storeUrl: string;
  /** The role's first password, already set, and the one the test changes it to. */
  first: string;
  second: string;
  close(): Promise<void>;
}

async function createFixture(label: string): Promise<Fixture> {
  const catalog = await createTestCatalog();
  const source = await createSampleDatabase(50);
  const role = await databaseRole();
  const first = secret('FIRSTPW');
  await role.setPassword(first);
  const restored = await createTestDatabase('audit_restored');
  await adminQuery(`alter database ${restored.name} owner to ${role.name}`);
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), `backstop-audit-${label}-`));
  return {
    catalog,
    source,
    restored,
    role,
    storeUrl: `file://${path.join(workDir, 'store')}`,
    first,
    second: secret('SECONDPW'),
    async close() {
      await source.drop();
      await restored.drop();
      await role.drop();
      await catalog.close();
      await fs.rm(workDir, { recursive: true, force: true });
    },
  };
}

describe('audit trail from the CLI', () => {
  let fixture: Fixture;
  let env: Record<string, string>;

  before(async () => {
    fixture = await createFixture('cli');
    env = { BACKSTOP_DATABASE_URL: fixture.catalog.url, BACKSTOP_STORE: fixture.storeUrl };
  });
  after(async () => {
    await fixture?.close();
  });

  const cli = async (args: string[], expectCode = 0) => {
    const result = await runCli(args, env);
    assert.equal(result.code, expectCode, `backstop ${args.join(' ')}: ${result.stderr}`);
    return result;
  };

  it('records each action with the OS user and host, the outcome and refusals, and never a password', TEST_TIMEOUT, async () => {
    const { catalog, source, restored, role, first, second } = fixture;
    await cli(['target', 'add', 'cliapp', '--database-url', role.url(source, first)]);
    await role.setPassword(second);
    await cli(['target', 'update', 'cliapp', '--database-url', role.url(source, second), '--keep-last', '3']);
    await cli(['target', 'pause', 'cliapp']);
    const queued = (await cli(['trigger', 'cliapp'])).stdout.trim();
    await cli(['cancel', queued]);
    const backup = (await cli(['trigger', 'cliapp'])).stdout.trim();
    await cli(['run', backup]);
    const restoreSecret = secret('RESTOREPW');
    await role.setPassword(restoreSecret);
    await cli(['restore', backup, '--to', role.url(restored, restoreSecret), '--no-owner']);
    await role.setPassword(second);
    // The drill itself may pass or fail here; what the trail records is that it was queued.
    await runCli(['verify', backup], env);
    const token = JSON.parse((await cli(['token', 'create', '--name', 'cli-made', '--role', 'viewer', '--json'])).stdout);
    await cli(['token', 'revoke', token.id]);
    await cli(['prune', '--dry-run']);
    await cli(['cancel', backup], 5);
    await cli(['target', 'delete', 'no-such-target'], 4);
    // The one-shot backup registers its target and runs it: both are actions of the person.
    await cli(['backup', role.url(source, second), '--target', 'oneshot']);

    const entries: Entry[] = JSON.parse((await cli(['audit', '--json'])).stdout);
    const table = (await cli(['audit'])).stdout;
    const secrets = [first, second, restoreSecret];
    assertNoSecret(table, secrets, 'backstop audit');
    assertNoSecret(JSON.stringify(entries), secrets, 'backstop audit --json');
    assertNoSecret(await storedAuditText(catalog.url), secrets, 'the audit_log rows');
    const oldestFirst = [...entries].reverse();
    assert.deepEqual(
      oldestFirst.map((entry) => [entry.action, entry.outcome, entry.errorCode]),
      [
        ['target.create', 'succeeded', null],
        ['target.update', 'succeeded', null],
        ['target.update', 'succeeded', null],
        ['run.trigger', 'succeeded', null],
        ['run.cancel', 'succeeded', null],
        ['run.trigger', 'succeeded', null],
        ['run.restore', 'succeeded', null],
        ['run.verify', 'succeeded', null],
        ['token.create', 'succeeded', null],
        ['token.revoke', 'succeeded', null],
        ['prune', 'succeeded', null],
        ['run.cancel', 'refused', 'RUN_ALREADY_TERMINAL'],
        ['target.delete', 'refused', 'TARGET_NOT_FOUND'],
        ['target.create', 'succeeded', null],
        ['run.trigger', 'succeeded', null],
      ],
    );
    const me = { kind: 'cli', name: os.userInfo().username, address: os.hostname(), client: 'cli' };
    for (const entry of entries) assert.deepEqual(entry.actor, me, `${entry.action}: ${JSON.stringify(entry.actor)}`);
    const [created, updated, paused, , cancelled, triggered, restore, verify, tokenCreated, tokenRevoked] = oldestFirst;
    assert.equal(created!.subject, 'cliapp');
    assert.deepEqual(created!.details.fields, ['databaseUrl', 'name']);
    assert.deepEqual(updated!.details, { changed: ['databaseUrl', 'retention'] });
    assert.deepEqual(paused!.details, { changed: ['paused'] });
    assert.equal(cancelled!.subject, queued);
    assert.deepEqual(triggered!.details, { runId: backup });
    assert.equal(restore!.subject, backup);
    const restoredAt = new URL(restored.url);
    assert.deepEqual(
      { host: restore!.details.host, port: restore!.details.port, database: restore!.details.database },
      { host: restoredAt.hostname, port: Number(restoredAt.port), database: restored.name },
    );
    assert.equal(verify!.subject, backup);
    assert.equal(tokenCreated!.subject, token.id);
    assert.deepEqual(tokenCreated!.details, { name: 'cli-made', role: 'viewer' });
    assert.equal(tokenRevoked!.subject, token.id);

    assert.match(table, /^AT\s+ACTOR\s+FROM\s+ACTION\s+SUBJECT\s+OUTCOME\s+DETAILS$/m);
    assert.match(table, /target\.update\s+cliapp\s+succeeded\s+changed=databaseUrl,retention/);
    assert.match(table, /refused RUN_ALREADY_TERMINAL/);
    // The secrets were really in play: the target's stored URL holds the current password.
    const [stored] = await adminQuery<{ url: string }>(`select database_url as url from backstop.targets where name = 'cliapp'`, [], catalog.url);
    assert.ok(stored!.url.includes(second));

    const targetOnly: Entry[] = JSON.parse((await cli(['audit', '--action', 'target', '--since', '1h', '--json'])).stdout);
    assert.deepEqual(
      targetOnly.map((entry) => entry.action),
      ['target.create', 'target.delete', 'target.update', 'target.update', 'target.create'],
    );
    assert.deepEqual(JSON.parse((await cli(['audit', '--action', 'run.cancel', '--json'])).stdout).length, 2);
    const [oneShotRun, oneShotTarget] = entries;
    assert.deepEqual([oneShotTarget!.subject, oneShotTarget!.details.oneShot, oneShotRun!.subject, oneShotRun!.details.oneShot], ['oneshot', true, 'oneshot', true]);
    assert.deepEqual(JSON.parse((await cli(['audit', '--actor', 'nobody-at-all', '--json'])).stdout), []);
    assert.deepEqual(JSON.parse((await cli(['audit', '--since', '2999-01-01', '--json'])).stdout), []);
    assert.equal(JSON.parse((await cli(['audit', '--actor', me.name, '--limit', '3', '--json'])).stdout).length, 3);
  });
});

describe('audit trail from the API', () => {
  let fixture: Fixture;
  let api: TestServer;

  before(async () => {
    fixture = await createFixture('api');
    // No worker: a queued run stays queued until the test runs it, so a cancel is certain.
    api = await startTestServer({ catalogUrl: fixture.catalog.url, env: { BACKSTOP_STORE: fixture.storeUrl } });
  });
  after(async () => {
    await api?.close();
    await fixture?.close();
  });

  const expectStatus = async (method: string, route: string, status: number, options: Parameters<TestServer['request']>[2] = {}) => {
    const result = await api.request(method, route, options);
    assert.equal(result.status, status, `${method} ${route}: ${result.text}`);
    return result.json;
  };

  it('records each action with the token, its role and the client address; admins only read it, page by page', TEST_TIMEOUT, async () => {
    const { catalog, source, restored, role, first, second } = fixture;
    const { admin, operator, viewer } = api.tokens;
    await expectStatus('POST', '/api/v1/targets', 201, { token: admin, body: { name: 'apiapp', databaseUrl: role.url(source, first) } });
    await role.setPassword(second);
    await expectStatus('PATCH', '/api/v1/targets/apiapp', 200, {
      token: admin,
      body: { databaseUrl: role.url(source, second), schedule: { cron: '0 3 * * *', timezone: 'UTC' } },
    });
    // Sent again unchanged: recorded, with nothing changed.
    await expectStatus('PATCH', '/api/v1/targets/apiapp', 200, { token: admin, body: { databaseUrl: role.url(source, second) } });
    await expectStatus('PATCH', '/api/v1/targets/apiapp', 403, { token: operator, body: { maxAttempts: 2 } });

    const queued = await expectStatus('POST', '/api/v1/runs', 201, { token: operator, body: { target: 'apiapp' } });
    await expectStatus('POST', `/api/v1/runs/${queued.id}/cancel`, 200, { token: operator });
    const backup = await expectStatus('POST', '/api/v1/runs', 201, { token: operator, body: { target: 'apiapp' } });
    const ran = await runCli(['run', backup.id], { BACKSTOP_DATABASE_URL: catalog.url });
    assert.equal(ran.code, 0, ran.stderr);
    await expectStatus('POST', `/api/v1/runs/${backup.id}/cancel`, 409, { token: operator });
    await expectStatus('POST', `/api/v1/runs/${backup.id}/verify`, 201, { token: operator });
    const restoreSecret = secret('RESTOREPW');
    await role.setPassword(restoreSecret);
    const restore = await expectStatus('POST', `/api/v1/runs/${backup.id}/restore`, 202, { token: admin, body: { databaseUrl: role.url(restored, restoreSecret), noOwner: true } });
    await waitFor('the restore to end', async () => {
      const events = (await api.request('GET', `/api/v1/runs/${backup.id}/events`)).json.items as Array<{ kind: string; data?: { restoreId?: string } }>;
      return events.some((event) => ['restored', 'restore_failed'].includes(event.kind) && event.data?.restoreId === restore.restoreId);
    });
    const token = await expectStatus('POST', '/api/v1/tokens', 201, { token: admin, body: { name: 'api-made', role: 'operator' } });
    await expectStatus('DELETE', `/api/v1/tokens/${token.id}`, 200, { token: admin });
    await expectStatus('DELETE', '/api/v1/targets/no-such-target', 404, { token: admin });

    await expectStatus('GET', '/api/v1/audit', 403, { token: viewer });
    await expectStatus('GET', '/api/v1/audit', 403, { token: operator });
    const page = await expectStatus('GET', '/api/v1/audit?limit=200', 200, { token: admin });
    const entries = page.items as Entry[];
    const secrets = [first, second, restoreSecret];
    assertNoSecret(JSON.stringify(entries), secrets, 'GET /api/v1/audit');
    assertNoSecret(await storedAuditText(catalog.url), secrets, 'the audit_log rows');
    assert.equal(page.nextCursor, null);
    const oldestFirst = [...entries].reverse();
    assert.deepEqual(
      oldestFirst.map((entry) => [entry.action, entry.actor.name, entry.outcome, entry.errorCode]),
      [
        ['target.create', 'test admin', 'succeeded', null],
        ['target.update', 'test admin', 'succeeded', null],
        ['target.update', 'test admin', 'succeeded', null],
        // Refused for its role by the API, before the operation: recorded all the same.
        ['target.update', 'test operator', 'refused', 'FORBIDDEN'],
        ['run.trigger', 'test operator', 'succeeded', null],
        ['run.cancel', 'test operator', 'succeeded', null],
        ['run.trigger', 'test operator', 'succeeded', null],
        ['run.cancel', 'test operator', 'refused', 'RUN_ALREADY_TERMINAL'],
        ['run.verify', 'test operator', 'succeeded', null],
        ['run.restore', 'test admin', 'succeeded', null],
        ['token.create', 'test admin', 'succeeded', null],
        ['token.revoke', 'test admin', 'succeeded', null],
        ['target.delete', 'test admin', 'refused', 'TARGET_NOT_FOUND'],
      ],
    );
    const tokenIds = Object.fromEntries(
      ((await expectStatus('GET', '/api/v1/tokens', 200, { token: admin })).items as Array<{ id: string; name: string }>).map((item) => [item.name, item.id]),
    );
    for (const entry of entries) {
      const role = entry.actor.name === 'test admin' ? 'admin' : 'operator';
      assert.deepEqual(entry.actor, { kind: 'token', id: tokenIds[entry.actor.name], name: entry.actor.name, role, address: '127.0.0.1', client: 'api' });
    }
    const [, changed, unchanged, forbidden, , cancelled, triggered, refusedCancel, verify, restoreEntry, tokenCreated] = oldestFirst;
    assert.deepEqual(changed!.details, { changed: ['databaseUrl', 'schedule'] });
    assert.deepEqual(unchanged!.details, { changed: [] });
    assert.equal(forbidden!.subject, 'apiapp');
    assert.equal(cancelled!.subject, queued.id);
    assert.deepEqual(triggered!.details, { runId: backup.id });
    assert.equal(refusedCancel!.subject, backup.id);
    assert.equal(verify!.subject, backup.id);
    assert.deepEqual(restoreEntry!.details, {
      host: new URL(restored.url).hostname,
      port: Number(new URL(restored.url).port),
      database: restored.name,
      restoreId: restore.restoreId,
    });
    assert.deepEqual(tokenCreated!.details, { name: 'api-made', role: 'operator' });

    // Pages of 5 by cursor give the same entries, in the same order, once each.
    const paged: number[] = [];
    let cursor: string | null = null;
    do {
      const next = await expectStatus('GET', `/api/v1/audit?limit=5${cursor ? `&cursor=${cursor}` : ''}`, 200, { token: admin });
      paged.push(...(next.items as Entry[]).map((entry) => entry.id));
      cursor = next.nextCursor;
    } while (cursor);
    assert.deepEqual(
      paged,
      entries.map((entry) => entry.id),
    );
    const filtered = await expectStatus('GET', '/api/v1/audit?action=token&actor=test%20admin&since=1h', 200, { token: admin });
    assert.deepEqual(
      (filtered.items as Entry[]).map((entry) => entry.action),
      ['token.revoke', 'token.create'],
    );
    const refused = await expectStatus('GET', '/api/v1/audit?since=yesterday', 400, { token: admin });
    assert.equal(refused.error.code, 'INVALID_INPUT');

    const [stored] = await adminQuery<{ url: string }>(`select database_url as url from backstop.targets where name = 'apiapp'`, [], catalog.url);
    assert.ok(stored!.url.includes(second));
  });
});

describe('audit trail: append-only for every role', () => {
  let catalog: TestCatalog;
  let ownCatalog: TestDatabase;
  const owner = `audit_owner_${randomBytes(4).toString('hex')}`;
  const granted = `audit_granted_${randomBytes(4).toString('hex')}`;

  before(async () => {
    catalog = await createTestCatalog();
    // A production-like catalog: a database owned by an ordinary login role that migrated it
    // itself, so it owns the audit table (the test catalogs are owned by a superuser).
    await adminQuery(`create role ${owner} login password 'owner-pw'; create role ${granted} login password 'granted-pw'`);
    ownCatalog = await createTestDatabase('audit_owned');
    await adminQuery(`alter database ${ownCatalog.name} owner to ${owner}`);
  });
  after(async () => {
    await ownCatalog?.drop();
    await catalog?.close();
    await adminQuery(`drop role if exists ${owner}; drop role if exists ${granted}`).catch(() => {});
  });

  const urlAs = (database: TestDatabase, user: string, password: string) => {
    const url = new URL(database.url);
    url.username = user;
    url.password = password;
    return url.toString();
  };

  it(
    "refuses UPDATE, DELETE and TRUNCATE from Backstop's role (the table's owner), a superuser and a role granted every privilege; entries stay as they were",
    TEST_TIMEOUT,
    async () => {
      const ownerUrl = urlAs(ownCatalog, owner, 'owner-pw');
      const pool = createPool(ownerUrl, { max: 2 });
      try {
        await migrate(pool);
        const [{ table_owner: tableOwner }] = (
          await pool.query<{ table_owner: string }>(`select tableowner as table_owner from pg_tables where schemaname = 'backstop' and tablename = 'audit_log'`)
        ).rows as [{ table_owner: string }];
        assert.equal(tableOwner, owner);
      } finally {
        await pool.end();
      }
      const cli = await runCli(['token', 'create', '--name', 'recorded', '--role', 'viewer'], { BACKSTOP_DATABASE_URL: ownerUrl });
      assert.equal(cli.code, 0, cli.stderr);
      await adminQuery(`grant all on all tables in schema backstop to ${granted}; grant usage on schema backstop to ${granted}`, [], ownCatalog.url);

      for (const database of [catalog, ownCatalog]) {
        if (database === catalog) {
          const made = await runCli(['token', 'create', '--name', 'recorded', '--role', 'viewer'], { BACKSTOP_DATABASE_URL: catalog.url });
          assert.equal(made.code, 0, made.stderr);
        }
        const snapshot = () => adminQuery('select * from backstop.audit_log order by id', [], database.url);
        const before = await snapshot();
        assert.equal(before.length, 1);
        const roles: Array<[string, string]> =
          database === catalog
            ? [['the superuser Backstop connects as here (the owner)', database.url]]
            : [
                ['the owner (Backstop’s own role)', ownerUrl],
                ['a superuser', database.url],
                ['a role granted every privilege on the table', urlAs(database, granted, 'granted-pw')],
              ];
        for (const [who, url] of roles) {
          for (const sql of [
            `update backstop.audit_log set actor_name = 'someone else', outcome = 'refused', error_code = 'FORBIDDEN'`,
            `update backstop.audit_log set details = '{}'::jsonb where id = ${before[0]!.id}`,
            'delete from backstop.audit_log',
            `delete from backstop.audit_log where id = ${before[0]!.id}`,
            'truncate backstop.audit_log',
            'truncate backstop.audit_log cascade',
            `with gone as (delete from backstop.audit_log returning id) select count(*) from gone`,
          ]) {
            await assert.rejects(adminQuery(sql, [], url), (error) => pgErrorCode(error) === INSUFFICIENT_PRIVILEGE, `${who}: ${sql}`);
          }
        }
        assert.deepEqual(await snapshot(), before);
      }
    },
  );
});

describe('audit trail: the sign-in and channel hooks', () => {
  let catalog: TestCatalog;
  before(async () => {
    catalog = await createTestCatalog();
  });
  after(async () => {
    await catalog?.close();
  });

  it('records a sign-in and its refusal, and a channel change with its changed fields, never their values, in one call each', async () => {
    const user = { kind: 'user', id: 'user-1', name: 'ada@example.com', role: 'admin', address: '198.51.100.7', client: 'dashboard' } as const;
    await recordSignIn(catalog.pool, user, { method: 'oidc' });
    await recordSignIn(catalog.pool, { ...user, id: '', name: 'mallory@example.com' }, { errorCode: 'UNAUTHORIZED', method: 'oidc' });
    const webhook = 'https://hooks.example.com/CHANNELSECRET';
    const saved = await recordChannelChange(catalog.pool, user, { kind: 'update', channel: 'ops-slack', changedFields: ['url', 'on'] }, async () => ({ url: webhook }));
    assert.equal(saved.url, webhook);
    await assert.rejects(
      recordChannelChange(catalog.pool, user, { kind: 'delete', channel: 'ops-slack' }, async () => {
        throw new BackstopError('TARGET_BUSY', 'A target still uses it.');
      }),
      /still uses it/,
    );
    const { items } = await listAudit(catalog.pool, { limit: 10 });
    assert.deepEqual(
      items.reverse().map((entry) => [entry.action, entry.actor.name, entry.subject, entry.outcome, entry.errorCode, entry.details]),
      [
        ['sign-in', 'ada@example.com', 'ada@example.com', 'succeeded', null, { method: 'oidc' }],
        ['sign-in', 'mallory@example.com', 'mallory@example.com', 'refused', 'UNAUTHORIZED', { method: 'oidc' }],
        ['channel.update', 'ada@example.com', 'ops-slack', 'succeeded', null, { changed: ['url', 'on'] }],
        ['channel.delete', 'ada@example.com', 'ops-slack', 'refused', 'TARGET_BUSY', {}],
      ],
    );
    assertNoSecret(await storedAuditText(catalog.url), ['CHANNELSECRET'], 'the audit_log rows');
  });
});
