import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runStatuses } from '../src/core/runState.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { generateIdentity } from '../src/pipeline/age.ts';
import { discoverPgTools } from '../src/pgtools/findPgTools.ts';
import { targetCreateSchema, targetUpdateSchema } from '../src/operations/targets/targetInput.ts';
import { targetCreateBody, targetUpdateBody } from '../src/server/requestSchemas.ts';
import { ajv } from '../src/server/validation.ts';
import { adminQuery, adminUrl, createSampleDatabase, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type HttpResult, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The life of a target through the HTTP API, against a real catalog, real pg_dump, a real
 * store and an in-process worker: create (and every check that refuses it, with its status,
 * code and field), test, change of every field (a rotated database password included), rename,
 * pause, delete; and validation errors in plain words, every problem at once, on every route.
 */

const TEST_TIMEOUT = { timeout: 300_000 };

/** A 4xx in the documented shape, its message in a person's words (no Ajv or JSON-pointer jargon). */
function assertRefused(result: HttpResult, status: number, code: string, field?: string): { message: string; field?: string; fields?: Array<{ field: string; message: string }> } {
  assert.equal(result.status, status, `expected ${status}, got ${result.status}: ${result.text}`);
  const error = result.json?.error;
  assert.equal(error?.code, code, result.text);
  assert.ok(typeof error.message === 'string' && error.message.length > 10, result.text);
  if (field !== undefined) assert.equal(error.field, field, result.text);
  for (const text of [error.message, ...(error.fields ?? []).map((problem: { message: string }) => problem.message)]) {
    assert.doesNotMatch(text, /must match pattern|must NOT have|body\/|querystring\/|\/options|instancePath|expected \w+, received/, result.text);
  }
  return error;
}

describe("target bodies: JSON Schema derived from the operations' zod schemas", () => {
  it("compiles in the server's strict Ajv, which agrees with zod on the documented examples and on shape errors", () => {
    for (const [body, schema] of [
      [targetCreateBody, targetCreateSchema],
      [targetUpdateBody, targetUpdateSchema],
    ] as const) {
      const validate = ajv({ coerce: false }).compile(body);
      const examples = body.examples as unknown[];
      assert.ok(examples.length > 0);
      for (const example of examples) {
        assert.equal(validate(example), true, JSON.stringify(validate.errors));
        assert.equal(schema.safeParse(example).success, true);
      }
      for (const wrong of [{ maxAttempts: '3' }, { options: { compression: 7 } }, { unknownField: true }, { schedule: { cron: '0 3 * * *' } }]) {
        const input = { ...(examples[0] as object), ...wrong };
        assert.equal(validate(input), false, JSON.stringify(wrong));
        assert.equal(schema.safeParse(input).success, false, JSON.stringify(wrong));
      }
    }
    // databaseUrl or serverUrl, one of them: a rule of the operation's schema, said with its field.
    assert.deepEqual((targetCreateBody as { required: string[] }).required.sort(), ['name']);
    const neither = targetCreateSchema.safeParse({ name: 'x' });
    assert.equal(neither.success, false);
    assert.deepEqual(
      neither.error?.issues.map((issue) => issue.path.join('.')),
      ['databaseUrl'],
    );
  });
});

describe('target lifecycle through the API', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let workDir: string;
  let storeDir: string;
  let api: TestServer;
  const roles: string[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(50);
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-api-lifecycle-'));
    storeDir = path.join(workDir, 'store');
    api = await startTestServer({ catalogUrl: catalog.url, worker: true, env: { BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_LEASE_TTL: '10', BACKSTOP_HEARTBEAT_INTERVAL: '1' } });
  });

  after(async () => {
    await api?.close();
    await source?.drop();
    for (const role of roles) await adminQuery(`drop role if exists ${role}`);
    await catalog?.close();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const names = async () => ((await api.request('GET', '/api/v1/targets')).json.items as Array<{ name: string }>).map((target) => target.name);
  const urlAs = (user: string, password: string) => {
    const url = new URL(source.url);
    url.username = user;
    url.password = password;
    return url.toString();
  };
  /** Triggers a backup and waits for the worker to end it. */
  const backupOf = async (target: string) => {
    const triggered = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target } });
    assert.equal(triggered.status, 201, triggered.text);
    return waitFor(
      `run of ${target} ended`,
      async () => {
        const run = (await api.request('GET', `/api/v1/runs/${triggered.json.id}`)).json;
        return ['succeeded', 'failed', 'cancelled', 'timed_out'].includes(run.status) ? run : null;
      },
      120_000,
      200,
    );
  };

  it('create refuses before storing anything: each check with its status, code and field; every input problem at once', TEST_TIMEOUT, async () => {
    const aFile = path.join(workDir, 'a-file');
    await fs.writeFile(aFile, 'not a folder');
    const unreachable = assertRefused(
      await api.request('POST', '/api/v1/targets', { body: { name: 'refused', databaseUrl: 'postgres://u:SECRETPW@127.0.0.1:1/db' } }),
      422,
      'DATABASE_UNREACHABLE',
      'databaseUrl',
    );
    assert.match(unreachable.message, /^Cannot connect to the database at postgres:\/\/u:\*{5}@127\.0\.0\.1:1\/db/);
    assert.ok(!JSON.stringify(unreachable).includes('SECRETPW'));
    assertRefused(
      await api.request('POST', '/api/v1/targets', { body: { name: 'refused', databaseUrl: source.url, storeUrl: `file://${aFile}/store` } }),
      422,
      'STORE_WRITE_FAILED',
      'storeUrl',
    );
    const ftp = assertRefused(
      await api.request('POST', '/api/v1/targets', { body: { name: 'refused', databaseUrl: source.url, storeUrl: 'ftp://files.example.com/b' } }),
      400,
      'INVALID_INPUT',
      'storeUrl',
    );
    assert.match(ftp.fields![0]!.message, /^Backstop stores backups in a folder \(file:\/\/\/absolute\/path\) or an S3-compatible bucket/);
    const age = assertRefused(
      await api.request('POST', '/api/v1/targets', { body: { name: 'refused', databaseUrl: source.url, options: { encryptTo: ['age1notakey'] } } }),
      400,
      'INVALID_INPUT',
      'options.encryptTo.0',
    );
    assert.deepEqual(age.fields, [{ field: 'options.encryptTo.0', message: 'must be an age recipient (age1…)' }]);

    const several = assertRefused(
      await api.request('POST', '/api/v1/targets', {
        body: {
          name: 'Refused',
          databaseUrl: 'mysql://x',
          maxAttempts: '3',
          options: { compression: 'lz4', withStorage: 'yes' },
          schedule: { cron: '61 * * * *', timezone: 'Mars/Olympus_Mons' },
          notifications: [{ kind: 'sms', on: ['failed'] }],
          databaseURL: 'postgres://u@h/d',
        },
      }),
      400,
      'INVALID_INPUT',
    );
    assert.deepEqual(several.fields!.map((problem) => problem.field).sort(), [
      'databaseURL',
      'databaseUrl',
      'maxAttempts',
      'name',
      'notifications.0.kind',
      'options.compression',
      'options.withStorage',
      'schedule.cron',
      'schedule.timezone',
    ]);
    const byField = Object.fromEntries(several.fields!.map((problem) => [problem.field, problem.message]));
    assert.equal(byField.maxAttempts, 'must be a whole number from 1 to 10');
    assert.equal(byField.databaseURL, 'is not a known field');
    assert.equal(byField['notifications.0.kind'], 'must be one of: webhook, slack, email, discord, telegram, teams, ntfy, shared');
    assert.equal(byField['options.withStorage'], 'must be true or false');
    assert.match(byField['schedule.timezone']!, /"Mars\/Olympus_Mons" is not a time zone/);
    assert.match(several.message, /^9 problems: /);

    assert.deepEqual(await names(), []);
    assert.deepEqual(await fs.readdir(storeDir).catch(() => []), [], 'no probe object left behind');
  });

  describe('a database newer than every installed pg_dump', () => {
    let home: string;
    let pg17Url: string;
    before(async () => {
      home = await temporaryHome('backstop-api-pg17-');
      pg17Url = (await ensureEmbeddedPostgres(home, { binaryPackage: 'pg17' })).url();
    });
    after(async () => {
      await stopEmbeddedPostgres(home, { binaryPackage: 'pg17', mode: 'immediate' });
      await fs.rm(home, { recursive: true, force: true });
    });

    it('create is 422 PG_VERSION_MISMATCH on databaseUrl; test reports it', TEST_TIMEOUT, async (t) => {
      if ((await discoverPgTools('pg_dump')).some((tool) => tool.major >= 17)) return t.skip('a pg_dump 17 or newer is installed here');
      const refused = assertRefused(await api.request('POST', '/api/v1/targets', { body: { name: 'newer', databaseUrl: pg17Url } }), 422, 'PG_VERSION_MISMATCH', 'databaseUrl');
      assert.match(refused.message, /PostgreSQL 17 .*postgresql-client-17/);
      assert.equal((await api.request('POST', '/api/v1/targets', { body: { name: 'newer', databaseUrl: pg17Url, checks: false } })).status, 201);
      const tested = await api.request('POST', '/api/v1/targets/newer/test', { token: api.tokens.operator });
      assert.equal(tested.status, 200, tested.text);
      assert.match(tested.json.serverVersion, /^17\./);
      assert.equal(tested.json.checks.find((check: { name: string }) => check.name === 'pg-dump').error.code, 'PG_VERSION_MISMATCH');
      assert.equal((await api.request('DELETE', '/api/v1/targets/newer')).status, 200);
    });
  });

  it('checks:false stores a target nobody reaches now; POST /test reports every check (operator), 404 for none', TEST_TIMEOUT, async () => {
    const created = await api.request('POST', '/api/v1/targets', { body: { name: 'later', databaseUrl: 'postgres://u:p@127.0.0.1:1/db', checks: false } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.paused, false);
    assert.deepEqual(created.json.database, { host: '127.0.0.1', port: 1, database: 'db', user: 'u' });
    assertRefused(
      await api.request('POST', '/api/v1/targets', { body: { name: 'later2', databaseUrl: source.url, storeUrl: 'ftp://x/y', checks: false } }),
      400,
      'INVALID_INPUT',
      'storeUrl',
    );

    const failing = await api.request('POST', '/api/v1/targets/later/test', { token: api.tokens.operator });
    assert.equal(failing.status, 200, failing.text);
    assert.equal(failing.json.target, 'later');
    assert.equal(failing.json.ok, false);
    assert.deepEqual(
      failing.json.checks.map((check: { name: string; ok: boolean; error?: { code: string } }) => [check.name, check.ok, check.error?.code ?? null]),
      [
        ['store-url', true, null],
        ['database', false, 'DATABASE_UNREACHABLE'],
        ['pg-dump', false, null],
        ['store-write', true, null],
      ],
    );
    assertRefused(await api.request('POST', '/api/v1/targets/later/test', { token: api.tokens.viewer }), 403, 'FORBIDDEN');
    assertRefused(await api.request('POST', '/api/v1/targets/nobody/test', { token: api.tokens.operator }), 404, 'TARGET_NOT_FOUND');

    const good = await api.request('POST', '/api/v1/targets', { body: { name: 'good', databaseUrl: source.url } });
    assert.equal(good.status, 201, good.text);
    const passing = await api.request('POST', '/api/v1/targets/good/test', { token: api.tokens.operator });
    assert.equal(passing.json.ok, true, passing.text);
    assert.match(passing.json.serverVersion, /^\d+\.\d+/);
    assert.match(passing.json.pgDump.path, /pg_dump$/);
    for (const name of ['later', 'good']) assert.equal((await api.request('DELETE', `/api/v1/targets/${name}`)).status, 200);
  });

  it('PATCH changes every field; a new databaseUrl is checked first, and a rotated password works after', TEST_TIMEOUT, async () => {
    const role = `api_reader_${process.pid}`;
    roles.push(role);
    await adminQuery(`create role ${role} login password 'old-pw-1' in role pg_read_all_data`);
    assert.equal((await api.request('POST', '/api/v1/targets', { body: { name: 'app', databaseUrl: urlAs(role, 'old-pw-1') } })).status, 201);
    assert.equal((await backupOf('app')).status, 'succeeded');
    await adminQuery(`alter role ${role} password 'new-pw-2'`);
    assert.equal((await backupOf('app')).error?.code, 'DATABASE_UNREACHABLE');

    const wrong = assertRefused(await api.request('PATCH', '/api/v1/targets/app', { body: { databaseUrl: urlAs(role, 'wrong-pw') } }), 422, 'DATABASE_UNREACHABLE', 'databaseUrl');
    assert.match(wrong.message, /password/);
    const rotated = await api.request('PATCH', '/api/v1/targets/app', { body: { databaseUrl: urlAs(role, 'new-pw-2') } });
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal(rotated.json.database.user, role);
    assert.ok(!rotated.text.includes('new-pw-2'));
    assert.equal((await backupOf('app')).status, 'succeeded');

    const movedDir = path.join(workDir, 'moved');
    const { recipient } = generateIdentity();
    const everything = {
      storeUrl: `file://${movedDir}`,
      options: { compression: 'gzip:4', encryptTo: [recipient], profile: 'default', checksums: true, restoreTo: ['restore.internal:5432/*'] },
      maxAttempts: 2,
      exclusive: false,
      schedule: { cron: '0 3 * * *', timezone: 'Europe/Paris' },
      paused: true,
      retention: { keepLast: 3, weekly: 2 },
      verification: { everyNth: 3, cron: '0 5 * * 0', timezone: 'UTC', checksums: true },
      notifications: [{ id: 'ops', kind: 'slack', url: 'https://hooks.example.com/services/x', on: ['failed', 'verify_failed'] }],
    };
    const changed = await api.request('PATCH', '/api/v1/targets/app', { body: everything });
    assert.equal(changed.status, 200, changed.text);
    const { notifications, ...rest } = everything;
    for (const [field, value] of Object.entries(rest)) assert.deepEqual(changed.json[field], value, field);
    assert.deepEqual(changed.json.notifications, [{ id: 'ops', kind: 'slack', on: ['failed', 'verify_failed'], signed: false, settings: { kind: 'slack', secretsSet: ['url'] } }]);
    assert.equal(notifications.length, 1);
    const moved = await backupOf('app');
    assert.equal(moved.status, 'succeeded', JSON.stringify(moved.error));
    assert.equal(moved.artifact.storeUrl, `file://${movedDir}`);
    assert.ok(moved.artifact.files.some((file: { name: string }) => file.name === 'dump.pgcustom.gz.age'));

    const github = await api.request('PATCH', '/api/v1/targets/app', { body: { executor: { kind: 'github', owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml' } } });
    assert.deepEqual(github.json.executor, { kind: 'github', owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml', ref: 'main' });
    const cleared = await api.request('PATCH', '/api/v1/targets/app', {
      body: { executor: null, schedule: null, retention: null, verification: null, notifications: [], options: {}, paused: false, exclusive: true, maxAttempts: 1 },
    });
    assert.equal(cleared.status, 200, cleared.text);
    assert.deepEqual(
      [cleared.json.executor, cleared.json.schedule, cleared.json.retention, cleared.json.verification, cleared.json.notifications, cleared.json.options, cleared.json.paused],
      [null, null, null, null, [], {}, false],
    );
    // The same rules as the CLI: a GitHub owner with a leading hyphen, Storage without the Supabase profile.
    const invalid = assertRefused(
      await api.request('PATCH', '/api/v1/targets/app', { body: { executor: { kind: 'github', owner: '-acme', repo: 'infra', workflow: 'x.yml' }, options: { withStorage: true } } }),
      400,
      'INVALID_INPUT',
    );
    assert.deepEqual(invalid.fields!.map((problem) => problem.field).sort(), ['executor.owner', 'options.withStorage']);
    assertRefused(await api.request('PATCH', '/api/v1/targets/app', { body: { checks: false } }), 400, 'INVALID_INPUT');
  });

  it('a server target: serverUrl makes one with the server profile; server options without it are refused, with their field', TEST_TIMEOUT, async () => {
    const server = new URL(adminUrl());
    server.pathname = '/';
    const created = await api.request('POST', '/api/v1/targets', { body: { name: 'whole', serverUrl: server.toString(), options: { server: { databases: ['postgres'], jobs: 2 } } } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.options.profile, 'server');
    assert.deepEqual(created.json.options.server, { databases: ['postgres'], jobs: 2 });
    // Read from the database the URL names, or `postgres` when it names none.
    assert.equal(created.json.database.database, 'postgres');
    assertRefused(
      await api.request('POST', '/api/v1/targets', { body: { name: 'not-whole', databaseUrl: source.url, options: { server: { globals: 'roles' } } } }),
      400,
      'INVALID_INPUT',
      'options.server',
    );
    assertRefused(await api.request('POST', '/api/v1/targets', { body: { name: 'both', databaseUrl: source.url, serverUrl: server.toString() } }), 400, 'INVALID_INPUT', 'serverUrl');
    assertRefused(
      await api.request('PATCH', '/api/v1/targets/whole', { body: { options: { profile: 'server', server: { globals: 'everything' } } } }),
      400,
      'INVALID_INPUT',
      'options.server.globals',
    );
    const changed = await api.request('PATCH', '/api/v1/targets/whole', { body: { options: { profile: 'server', server: { excludeDatabases: ['scratch'], globals: 'roles' } } } });
    assert.equal(changed.status, 200, changed.text);
    assert.deepEqual(changed.json.options.server, { excludeDatabases: ['scratch'], globals: 'roles' });
    const deleted = await api.request('DELETE', '/api/v1/targets/whole');
    assert.equal(deleted.status, 200, deleted.text);
  });

  it('rename (PATCH name): 409 when the name is taken; its runs follow it', TEST_TIMEOUT, async () => {
    const runsBefore = (await api.request('GET', '/api/v1/runs?target=app')).json.items.map((run: { id: string }) => run.id);
    assert.ok(runsBefore.length >= 4);
    assert.equal((await api.request('POST', '/api/v1/targets', { body: { name: 'taken', databaseUrl: source.url, checks: false } })).status, 201);
    assertRefused(await api.request('PATCH', '/api/v1/targets/app', { body: { name: 'taken' } }), 409, 'TARGET_EXISTS', 'name');
    const renamed = await api.request('PATCH', '/api/v1/targets/app', { body: { name: 'shop' } });
    assert.equal(renamed.status, 200, renamed.text);
    assert.deepEqual(
      (await api.request('GET', '/api/v1/runs?target=shop')).json.items.map((run: { id: string }) => run.id),
      runsBefore,
    );
    assertRefused(await api.request('GET', '/api/v1/targets/app'), 404, 'TARGET_NOT_FOUND');
  });

  it('DELETE: 409 TARGET_BUSY while a run is active; then 200 listing its backups, which stay in the store', TEST_TIMEOUT, async () => {
    // A worker would take a queued run at once: without one, the run stays queued.
    await api.close();
    api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_STORE: `file://${storeDir}` } });
    const queued = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: 'shop' } });
    assertRefused(await api.request('DELETE', '/api/v1/targets/shop'), 409, 'TARGET_BUSY');
    await api.request('POST', `/api/v1/runs/${queued.json.id}/cancel`, { token: api.tokens.operator });

    const succeeded = (await api.request('GET', '/api/v1/runs?target=shop&status=succeeded')).json.items as Array<{ id: string }>;
    const deleted = await api.request('DELETE', '/api/v1/targets/shop');
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal(deleted.json.deleted, 'shop');
    assert.equal(deleted.json.storeUrl, `file://${path.join(workDir, 'moved')}`);
    assert.deepEqual(deleted.json.keptBackups.map((backup: { runId: string }) => backup.runId).sort(), succeeded.map((run) => run.id).sort());
    for (const backup of deleted.json.keptBackups as Array<{ storeUrl: string; prefix: string; sizeBytes: number; finishedAt: string }>) {
      const folder = path.join(new URL(backup.storeUrl).pathname, backup.prefix);
      let bytes = 0;
      for (const file of await fs.readdir(folder)) bytes += (await fs.stat(path.join(folder, file))).size;
      assert.equal(backup.sizeBytes, bytes, folder);
      assert.ok(!Number.isNaN(Date.parse(backup.finishedAt)));
    }
    assert.deepEqual(await names(), ['taken']);
    assertRefused(await api.request('DELETE', '/api/v1/targets/shop'), 404, 'TARGET_NOT_FOUND');
  });

  it('validation errors on every route: INVALID_INPUT listing every problem with its field, in plain words', TEST_TIMEOUT, async () => {
    const query = assertRefused(await api.request('GET', '/api/v1/runs?limit=0&status=stuck&nope=1'), 400, 'INVALID_INPUT');
    assert.deepEqual(Object.fromEntries(query.fields!.map((problem) => [problem.field, problem.message])), {
      nope: 'is not a known query parameter',
      limit: 'must be at least 1',
      status: `must be one of: ${runStatuses.join(', ')}`,
    });
    const token = assertRefused(await api.request('POST', '/api/v1/tokens', { body: { role: 'root', extra: true } }), 400, 'INVALID_INPUT');
    assert.deepEqual(token.fields!.map((problem) => problem.field).sort(), ['extra', 'name', 'role']);
    assert.equal(token.fields!.find((problem) => problem.field === 'name')!.message, 'is required');
    const id = assertRefused(await api.request('GET', '/api/v1/runs/not-a-uuid'), 400, 'INVALID_INPUT', 'id');
    assert.match(id.fields![0]!.message, /^must be a UUID/);
    const name = assertRefused(await api.request('GET', '/api/v1/targets/Not_Valid'), 400, 'INVALID_INPUT', 'name');
    assert.match(name.fields![0]!.message, /^must be 1 to 63 lowercase letters/);
    const notObject = assertRefused(await api.request('PATCH', '/api/v1/targets/taken', { body: [1] }), 400, 'INVALID_INPUT');
    assert.equal(notObject.message, 'The request body must be an object.');
  });
});
