import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateIdentity } from '../src/pipeline/age.ts';
import { getRun } from '../src/db/runRecords.ts';
import { createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { backUpThroughApi, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * What the dashboard's actions rest on, over real HTTP with real backups: each run and target
 * says what the caller may do and why not, and the acting routes refuse the same things before
 * starting anything (a drill of an encrypted backup without an identity is never queued);
 * downloads of a backup's files; a target's restore history; test notifications through the
 * notifier's own delivery.
 */

const WAIT = 60_000;

describe('dashboard actions: capabilities, refusals, downloads, restores, test notifications', { timeout: 600_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  const key = generateIdentity();
  let encryptedRun = '';
  let plainRun = '';

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(200);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-actions-store-'));
    api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_STORE: `file://${storeDir}` } });
    for (const [name, encryptTo] of [
      ['sealed', [key.recipient]],
      ['open', []],
    ] as const) {
      const created = await api.request('POST', '/api/v1/targets', { body: { name, databaseUrl: source.url, storeUrl: `file://${storeDir}`, options: { encryptTo } } });
      assert.equal(created.status, 201, created.text);
    }
    // Backups need a worker; drills later must be claimed only by the worker the test means.
    const workers = await startTestServer({ catalogUrl: catalog.url, worker: true, tokens: false });
    try {
      encryptedRun = await backUpThroughApi(api, 'sealed');
      plainRun = await backUpThroughApi(api, 'open');
    } finally {
      await workers.close();
    }
  });

  after(async () => {
    await api?.close();
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('a run says what each role may do with it, and why not', async () => {
    const asAdmin = await api.request('GET', `/api/v1/runs/${encryptedRun}`);
    assert.equal(asAdmin.status, 200, asAdmin.text);
    const actions = asAdmin.json.actions;
    assert.equal(actions.verify.allowed, false);
    assert.equal(actions.verify.blockedBy, 'identity');
    assert.match(actions.verify.reason, /encrypted, and the server holds no age identity/);
    assert.deepEqual({ allowed: actions.restore.allowed, identityRequired: actions.restore.identityRequired }, { allowed: true, identityRequired: true });
    assert.equal(actions.download.allowed, true);
    assert.equal(actions.cancel.blockedBy, 'state');

    const plain = (await api.request('GET', `/api/v1/runs/${plainRun}`, { token: api.tokens.operator })).json.actions;
    assert.equal(plain.verify.allowed, true);
    assert.equal(plain.download.blockedBy, 'role');
    assert.match(plain.download.reason, /needs the admin role/);
    // An operator restores only into a destination the target lists for operators: none yet.
    assert.equal(plain.restore.blockedBy, 'role');
    assert.match(plain.restore.reason, /lists none/);
    assert.equal((await api.request('PATCH', '/api/v1/targets/open', { body: { options: { restoreTo: ['*:*/*'] } } })).status, 200);
    const listed = (await api.request('GET', `/api/v1/runs/${plainRun}`, { token: api.tokens.operator })).json.actions;
    assert.deepEqual(listed.restore, { allowed: true, identityRequired: false });
    assert.equal((await api.request('GET', '/api/v1/targets/open', { token: api.tokens.operator })).json.actions.restoreNewest.allowed, true);

    const viewer = (await api.request('GET', `/api/v1/runs/${plainRun}`, { token: api.tokens.viewer })).json.actions;
    for (const name of ['cancel', 'verify', 'restore', 'download']) assert.equal(viewer[name].blockedBy, 'role', name);

    const target = await api.request('GET', '/api/v1/targets/sealed', { token: api.tokens.operator });
    assert.equal(target.json.actions.verifyNewest.blockedBy, 'identity');
    assert.equal(target.json.actions.backup.allowed, true);
    assert.equal(target.json.actions.delete.blockedBy, 'role');
  });

  it('refuses a drill of an encrypted backup without an identity before queuing anything; the target stays healthy', async () => {
    const refused = await api.request('POST', `/api/v1/runs/${encryptedRun}/verify`, { token: api.tokens.operator });
    assert.equal(refused.status, 409, refused.text);
    assert.equal(refused.json.error.code, 'IDENTITY_REQUIRED');
    const { rows } = await catalog.pool.query(`select count(*)::int as n from backstop.runs where kind = 'verify'`);
    assert.equal(rows[0].n, 0);
    const overview = await api.request('GET', '/api/v1/overview');
    assert.equal(overview.json.items.find((item: { name: string }) => item.name === 'sealed').health, 'ok');

    // A plain backup's drill is queued as before.
    const drill = await api.request('POST', `/api/v1/runs/${plainRun}/verify`, { token: api.tokens.operator });
    assert.equal(drill.status, 201, drill.text);
  });

  it('with the server holding the identity, the drill is allowed, queued and passes; a wrong identity is refused', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-identity-'));
    const keyFile = path.join(dir, 'key.txt');
    const wrongFile = path.join(dir, 'wrong.txt');
    await fs.writeFile(keyFile, `${key.identity}\n`, { mode: 0o600 });
    await fs.writeFile(wrongFile, `${generateIdentity().identity}\n`, { mode: 0o600 });
    const holding = await startTestServer({ catalogUrl: catalog.url, worker: true, env: { BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_IDENTITY_FILE: keyFile } });
    const wrong = await startTestServer({ catalogUrl: catalog.url, tokens: false, env: { BACKSTOP_IDENTITY_FILE: wrongFile } });
    try {
      const run = await holding.request('GET', `/api/v1/runs/${encryptedRun}`);
      assert.equal(run.json.actions.verify.allowed, true);
      assert.equal(run.json.actions.restore.identityRequired, false);

      const refused = await wrong.request('POST', `/api/v1/runs/${encryptedRun}/verify`, { token: holding.tokens.operator });
      assert.equal(refused.status, 409, refused.text);
      assert.match(refused.json.error.message, /holds keys for age1.* only/);

      const drill = await holding.request('POST', `/api/v1/runs/${encryptedRun}/verify`, { token: holding.tokens.operator });
      assert.equal(drill.status, 201, drill.text);
      const finished = await waitFor(
        'the drill ended',
        async () => {
          const current = await getRun(catalog.pool, drill.json.id);
          return ['succeeded', 'failed', 'timed_out'].includes(current.status) ? current : null;
        },
        WAIT,
      );
      assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error));
    } finally {
      await wrong.close();
      await holding.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an API restore of an encrypted backup without a fitting identity, naming the field', async () => {
    const destination = 'postgres://nobody@127.0.0.1:1/none';
    const missing = await api.request('POST', `/api/v1/runs/${encryptedRun}/restore`, { body: { databaseUrl: destination } });
    assert.equal(missing.status, 409, missing.text);
    assert.deepEqual([missing.json.error.code, missing.json.error.field], ['IDENTITY_REQUIRED', 'identity']);
    const wrong = await api.request('POST', `/api/v1/runs/${encryptedRun}/restore`, { body: { databaseUrl: destination, identity: generateIdentity().identity } });
    assert.equal(wrong.status, 400, wrong.text);
    assert.deepEqual([wrong.json.error.code, wrong.json.error.field], ['INVALID_INPUT', 'identity']);
    assert.match(wrong.json.error.message, /does not decrypt this backup/);
    const garbage = await api.request('POST', `/api/v1/runs/${encryptedRun}/restore`, { body: { databaseUrl: destination, identity: 'not a key' } });
    assert.equal(garbage.json.error.field, 'identity');
    const { rows } = await catalog.pool.query(`select count(*)::int as n from backstop.run_events where kind = 'restore_started'`);
    assert.equal(rows[0].n, 0, 'a refused restore left a start event');
  });

  it('downloads each file of a backup as the manifest lists it, to admins only, and nothing else', async () => {
    const run = await getRun(catalog.pool, encryptedRun);
    for (const file of [...run.artifact!.files, run.artifact!.manifest]) {
      const response = await fetch(`${api.url}/api/v1/runs/${encryptedRun}/files/${encodeURIComponent(file.name)}`, { headers: { authorization: `Bearer ${api.tokens.admin}` } });
      assert.equal(response.status, 200, file.name);
      const bytes = Buffer.from(await response.arrayBuffer());
      assert.equal(createHash('sha256').update(bytes).digest('hex'), file.sha256);
      assert.equal(response.headers.get('content-length'), String(file.size));
      assert.match(response.headers.get('content-disposition') ?? '', new RegExp(`^attachment; filename="${file.name.replaceAll('.', '\\.')}"`));
      assert.equal(response.headers.get('repr-digest'), `sha-256=:${Buffer.from(file.sha256, 'hex').toString('base64')}:`);
    }
    const dump = run.artifact!.files[0]!.name;
    const forbidden = await api.request('GET', `/api/v1/runs/${encryptedRun}/files/${dump}`, { token: api.tokens.operator });
    assert.equal(forbidden.status, 403);
    // Sent as they are: fetch() would resolve dot segments before the server saw them.
    const raw = (name: string) =>
      new Promise<number>((resolve, reject) => {
        const { hostname, port } = new URL(api.url);
        const request = http.get({ hostname, port, path: `/api/v1/runs/${encryptedRun}/files/${name}`, headers: { authorization: `Bearer ${api.tokens.admin}` } }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        request.on('error', reject);
      });
    for (const name of ['../../../etc/passwd', '..%2F..%2Fmanifest.json', 'nope.sql', `%2E%2E/attempt-1/${dump}`, `./${dump}`, `.%2F${dump}`, `x/../${dump}`, `${dump}%00`]) {
      // A name that could leave the folder is refused as such (400); one no manifest lists, 404.
      const status = await raw(name);
      assert.ok(status === 400 || status === 404, `${name}: ${status}`);
    }
    const notBackup = await api.request('GET', `/api/v1/runs/00000000-0000-4000-8000-000000000000/files/${dump}`);
    assert.equal(notBackup.status, 404);
  });

  it('a download of a file altered in the store ends short, never completes with other bytes', async () => {
    const run = await getRun(catalog.pool, plainRun);
    const file = run.artifact!.files[0]!;
    const stored = path.join(storeDir, run.artifact!.prefix, file.name);
    const original = await fs.readFile(stored);
    const altered = Buffer.from(original);
    altered[altered.length - 1] = altered[altered.length - 1]! ^ 0xff;
    await fs.writeFile(stored, altered);
    try {
      const response = await fetch(`${api.url}/api/v1/runs/${plainRun}/files/${file.name}`, { headers: { authorization: `Bearer ${api.tokens.admin}` } });
      // A file that fits the first read is refused before the headers; a longer one is cut short.
      if (response.status === 200) await assert.rejects(response.arrayBuffer());
      else assert.equal((await response.json()).error.code, 'ARTIFACT_CORRUPT');
    } finally {
      await fs.writeFile(stored, original);
    }
  });

  it("refuses a download when the catalog's record points at another run's backup", async () => {
    const other = await getRun(catalog.pool, plainRun);
    const own = await getRun(catalog.pool, encryptedRun);
    await catalog.pool.query(`update backstop.runs set artifact = $2::jsonb where id = $1`, [encryptedRun, JSON.stringify(other.artifact)]);
    try {
      const response = await api.request('GET', `/api/v1/runs/${encryptedRun}/files/${other.artifact!.files[0]!.name}`);
      assert.equal(response.status, 422, response.text);
      assert.equal(response.json.error.code, 'ARTIFACT_REJECTED');
    } finally {
      await catalog.pool.query(`update backstop.runs set artifact = $2::jsonb where id = $1`, [encryptedRun, JSON.stringify(own.artifact)]);
    }
  });

  it("lists a target's restores newest first, a failed one as failed", async () => {
    const destination = await createTestDatabase('restored');
    try {
      const good = await api.request('POST', `/api/v1/runs/${plainRun}/restore`, { body: { databaseUrl: destination.url, privilegedRole: 'postgres' } });
      assert.equal(good.status, 202, good.text);
      await waitFor(
        'the restore ended',
        async () => (await api.request('GET', '/api/v1/targets/open/restores')).json.items.some((item: { status: string }) => item.status === 'restored'),
        WAIT,
      );
      // Into a database that is not empty: the restore starts and fails.
      const bad = await api.request('POST', `/api/v1/runs/${plainRun}/restore`, { body: { databaseUrl: destination.url, privilegedRole: 'postgres' } });
      assert.equal(bad.status, 202, bad.text);
      const items = await waitFor(
        'the second restore ended',
        async () => {
          const list = (await api.request('GET', '/api/v1/targets/open/restores', { token: api.tokens.viewer })).json.items;
          return list.length === 2 && list[0].status !== 'running' ? list : null;
        },
        WAIT,
      );
      assert.deepEqual(
        items.map((item: { status: string }) => item.status),
        ['failed', 'restored'],
      );
      assert.equal(items[0].runId, plainRun);
      assert.equal(items[0].requestedBy, 'token "test admin"');
      assert.equal(items[0].error.code, 'RESTORE_TARGET_NOT_EMPTY');
      assert.ok(Date.parse(items[1].finishedAt) >= Date.parse(items[1].startedAt));
      assert.deepEqual((await api.request('GET', '/api/v1/targets/sealed/restores')).json.items, []);
    } finally {
      await destination.drop();
    }
  });

  it('sends a signed test notification through the real delivery, and reports a receiver that fails', async () => {
    const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
    let answer = 204;
    const server = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        received.push({ headers: request.headers, body });
        response.writeHead(answer).end(answer >= 400 ? 'nope' : undefined);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const secret = `${'a'.repeat(16)}test-signing-secret`;
    try {
      const patched = await api.request('PATCH', '/api/v1/targets/open', { body: { notifications: [{ kind: 'webhook', url, secret, on: ['failed'] }] } });
      assert.equal(patched.status, 200, patched.text);
      const channelId = patched.json.notifications[0].id as string;
      const sent = await api.request('POST', `/api/v1/targets/open/notifications/${channelId}/test`);
      assert.equal(sent.status, 200, sent.text);
      assert.deepEqual(sent.json, { delivered: true, status: 204 });
      const [delivery] = received;
      assert.equal(delivery!.headers['x-backstop-event'], 'test');
      const expected = `sha256=${createHmac('sha256', secret).update(`${delivery!.headers['x-backstop-timestamp']}.${delivery!.body}`).digest('hex')}`;
      assert.equal(delivery!.headers['x-backstop-signature'], expected);
      assert.equal(JSON.parse(delivery!.body).target.name, 'open');

      answer = 500;
      const failed = await api.request('POST', `/api/v1/targets/open/notifications/${channelId}/test`);
      assert.deepEqual(failed.json, { delivered: false, status: 500, error: 'HTTP 500: nope' });
      assert.equal((await api.request('POST', `/api/v1/targets/open/notifications/${channelId}/test`, { token: api.tokens.operator })).status, 403);
      assert.equal((await api.request('POST', '/api/v1/targets/open/notifications/nope/test')).status, 404);
      assert.ok(!sent.text.includes(url) && !failed.text.includes(secret));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
