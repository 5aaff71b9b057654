import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_FORMAT, MANIFEST_VERSION, artifactPrefix, manifestSchema, type ManifestFile } from '../src/core/manifest.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget, getTargetWithSecret } from '../src/db/targets.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { sampleProgress, withoutTimestamp } from './support/progress.ts';
import { closedPort, startTestServer, type HttpResult, type TestServer } from './support/server.ts';
import { setTimeout } from 'node:timers/promises';

/**
 * The REST API against a real catalog, over real HTTP: targets with write-only secrets, run
 * listing and pagination, roles, token revocation, runner tokens, readiness and request errors.
 * No worker runs here: runs stay where the test puts them.
 */

const UNKNOWN_ID = '3f1c2b4a-0d5e-4f6a-8b7c-9d0e1f2a3b4c';
const DB_PASSWORD = 'pw-SECRET-5c1f0e';
const HOOK_SECRET = 'hook-SECRET-77a2';
const SIGNING_SECRET = 'sig-SECRET-0123456789abcdef';
const secrets = [DB_PASSWORD, HOOK_SECRET, SIGNING_SECRET];

function assertError(result: HttpResult, status: number, code?: string): void {
  assert.equal(result.status, status, `expected ${status}, got ${result.status}: ${result.text}`);
  assert.equal(typeof result.json?.error?.code, 'string', `no error code in ${result.text}`);
  assert.ok(result.json.error.message.length > 0, 'empty error message');
  if (code) assert.equal(result.json.error.code, code);
}

describe('HTTP API', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let api: TestServer;

  before(async () => {
    catalog = await createTestCatalog();
    api = await startTestServer({ catalogUrl: catalog.url });
  });

  after(async () => {
    await api?.close();
    await catalog?.close();
  });

  it('serves health, readiness, metrics and the OpenAPI document', async () => {
    assert.equal((await api.request('GET', '/healthz', { token: null })).status, 200);
    const ready = await api.request('GET', '/readyz', { token: null });
    assert.equal(ready.status, 200);
    assert.equal(ready.json.status, 'ready');
    const metrics = await api.request('GET', '/metrics', { token: null });
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^backstop_runs\{status="queued"\} \d+$/m);
    assert.match(metrics.text, /^backstop_catalog_up 1$/m);
    assert.match(metrics.text, /backstop_scheduler_actions_total/);
    const doc = await api.request('GET', '/api/openapi.json', { token: api.tokens.viewer });
    assert.equal(doc.status, 200);
    assert.equal(doc.json.openapi, '3.1.0');
    for (const path of ['/api/v1/targets', '/api/v1/runs', '/api/v1/runs/{id}/events', '/api/v1/runs/{id}/claim', '/api/v1/tokens']) {
      assert.ok(doc.json.paths[path], `${path} missing from the OpenAPI document`);
    }
    assertError(await api.request('GET', '/api/openapi.json', { token: null }), 401, 'UNAUTHORIZED');
    const page = await api.request('GET', '/', { token: null });
    assert.equal(page.status, 200);
    assert.match(page.text, /Backstop/);
  });

  it('targets: create, read, update, delete; secrets are accepted and never returned', async () => {
    const databaseUrl = `postgres://backup:${DB_PASSWORD}@db.example.com:5432/app`;
    const created = await api.request('POST', '/api/v1/targets', {
      body: {
        name: 'crud',
        databaseUrl,
        // No such database: stored without reaching it.
        checks: false,
        storeUrl: 'file:///var/backups/crud',
        options: { compression: 'zstd:3' },
        maxAttempts: 2,
        schedule: { cron: '0 3 * * *', timezone: 'Europe/Paris' },
        retention: { keepLast: 7, daily: 7 },
        notifications: [{ id: 'ops', kind: 'webhook', url: `https://hooks.example.com/${HOOK_SECRET}`, secret: SIGNING_SECRET, on: ['failed'] }],
      },
    });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.name, 'crud');
    assert.equal(created.json.maxAttempts, 2);
    assert.deepEqual(created.json.schedule, { cron: '0 3 * * *', timezone: 'Europe/Paris' });
    assert.deepEqual(created.json.notifications, [{ id: 'ops', kind: 'webhook', on: ['failed'], signed: true, settings: { kind: 'webhook', secretsSet: ['url', 'secret'] } }]);
    assert.equal('databaseUrl' in created.json, false);

    const listed = await api.request('GET', '/api/v1/targets', { token: api.tokens.viewer });
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.json.items.map((t: { name: string }) => t.name),
      ['crud'],
    );
    const shown = await api.request('GET', '/api/v1/targets/crud', { token: api.tokens.viewer });
    assert.equal(shown.status, 200);
    assert.equal(shown.json.id, created.json.id);

    // A channel sent back by id without its url and secret keeps them (they are write-only).
    const updated = await api.request('PATCH', '/api/v1/targets/crud', {
      body: { maxAttempts: 3, schedule: null, notifications: [{ id: 'ops', kind: 'webhook', on: ['failed', 'timed_out'] }] },
    });
    assert.equal(updated.status, 200, updated.text);
    assert.equal(updated.json.maxAttempts, 3);
    assert.equal(updated.json.schedule, null);
    assert.deepEqual(updated.json.notifications, [
      { id: 'ops', kind: 'webhook', on: ['failed', 'timed_out'], signed: true, settings: { kind: 'webhook', secretsSet: ['url', 'secret'] } },
    ]);
    const stored = await getTargetWithSecret(catalog.pool, created.json.id);
    assert.equal(stored.databaseUrl, databaseUrl);
    assert.equal((stored.notificationChannels[0] as { url?: string; secret?: string }).url, `https://hooks.example.com/${HOOK_SECRET}`);
    assert.equal((stored.notificationChannels[0] as { url?: string; secret?: string }).secret, SIGNING_SECRET);

    const renamed = await api.request('PATCH', '/api/v1/targets/crud', { body: { name: 'crud2', databaseUrl: `${databaseUrl}?sslmode=require`, checks: false } });
    assert.equal(renamed.status, 200, renamed.text);
    assertError(await api.request('GET', '/api/v1/targets/crud'), 404, 'TARGET_NOT_FOUND');

    assertError(await api.request('POST', '/api/v1/targets', { body: { name: 'crud2', databaseUrl } }), 409, 'TARGET_EXISTS');
    const run = await createRun(catalog.pool, { targetId: created.json.id, trigger: 'test', runDeadlineMs: 60_000 });
    assertError(await api.request('DELETE', '/api/v1/targets/crud2'), 409, 'TARGET_BUSY');
    await api.request('POST', `/api/v1/runs/${run.id}/cancel`);
    const deleted = await api.request('DELETE', '/api/v1/targets/crud2');
    assert.equal(deleted.status, 200, deleted.text);
    assert.deepEqual(deleted.json, { deleted: 'crud2', storeUrl: 'file:///var/backups/crud', keptBackups: [] });
    assertError(await api.request('GET', '/api/v1/targets/crud2'), 404, 'TARGET_NOT_FOUND');
    assertError(await api.request('DELETE', '/api/v1/targets/crud2'), 404, 'TARGET_NOT_FOUND');
  });

  it('targets: invalid fields are 400 with a message (cron, time zone, URLs, types, unknown fields)', async () => {
    const valid = { name: 'checked', databaseUrl: `postgres://u:${DB_PASSWORD}@h/db` };
    const cases: Array<[string, Record<string, unknown>]> = [
      ['bad cron', { schedule: { cron: 'every day', timezone: 'UTC' } }],
      ['impossible cron', { schedule: { cron: '0 0 31 2 *', timezone: 'UTC' } }],
      ['bad time zone', { schedule: { cron: '0 3 * * *', timezone: 'Mars/Olympus_Mons' } }],
      ['bad verification cron', { verification: { cron: '99 * * * *', timezone: 'UTC' } }],
      ['not a database URL', { databaseUrl: 'mysql://u:p@h/db' }],
      ['store URL with a scheme we do not know', { storeUrl: 'ftp://host/backups' }],
      ['relative store path', { storeUrl: 'backups' }],
      ['S3 URL with credentials', { storeUrl: 's3://AKIA:secret@bucket/prefix' }],
      ['bad compression', { options: { compression: 'lz4' } }],
      ['bad recipient', { options: { encryptTo: ['age1notakey'] } }],
      ['string for a number', { maxAttempts: '3' }],
      ['number for a string', { name: 12 }],
      ['out of range', { maxAttempts: 11 }],
      ['unknown field', { databaseURL: 'postgres://u@h/db' }],
      ['notification without url', { notifications: [{ kind: 'slack', on: ['failed'] }] }],
      ['notification url not http', { notifications: [{ kind: 'slack', url: 'javascript:alert(1)', on: ['failed'] }] }],
      ['SQL in the name', { name: "x'; drop table backstop.runs; --" }],
    ];
    for (const [what, change] of cases) {
      const result = await api.request('POST', '/api/v1/targets', { body: { ...valid, ...change } });
      assert.equal(result.status, 400, `${what}: ${result.status} ${result.text}`);
      assert.equal(result.json?.error?.code, 'INVALID_INPUT', what);
    }
    assertError(await api.request('PATCH', '/api/v1/targets/nope', { body: { maxAttempts: 2 } }), 404, 'TARGET_NOT_FOUND');
    assertError(await api.request('PATCH', '/api/v1/targets/nope', { body: {} }), 400, 'INVALID_INPUT');
  });

  it('runs: list with filters, cursor and offset pagination, page-size limits', async () => {
    const alpha = await createTarget(catalog.pool, { name: 'alpha', databaseUrl: 'postgres://u@h/a', storeUrl: 'file:///tmp/a', exclusive: false });
    const beta = await createTarget(catalog.pool, { name: 'beta', databaseUrl: 'postgres://u@h/b', storeUrl: 'file:///tmp/b', exclusive: false });
    const created: string[] = [];
    for (let i = 0; i < 7; i++) {
      const run = await createRun(catalog.pool, { targetId: i % 2 === 0 ? alpha.id : beta.id, trigger: 'test', runDeadlineMs: 60_000 });
      created.push(run.id);
    }
    await api.request('POST', `/api/v1/runs/${created[0]}/cancel`);
    await api.request('POST', `/api/v1/runs/${created[1]}/cancel`);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: HttpResult = await api.request('GET', `/api/v1/runs?target=alpha&limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: api.tokens.viewer });
      assert.equal(page.status, 200, page.text);
      assert.ok(page.json.items.length <= 2);
      for (const run of page.json.items as { id: string; targetName: string }[]) {
        assert.equal(run.targetName, 'alpha');
        seen.push(run.id);
      }
      cursor = page.json.nextCursor;
      pages++;
    } while (cursor);
    const alphaRuns = created.filter((_, i) => i % 2 === 0).reverse();
    assert.deepEqual(seen, alphaRuns, 'cursor pages: every alpha run once, newest first');
    assert.equal(pages, 2);

    const cancelled = await api.request('GET', '/api/v1/runs?status=cancelled');
    assert.deepEqual(cancelled.json.items.map((run: { id: string }) => run.id).sort(), [created[0], created[1]].sort());
    const offset = await api.request('GET', '/api/v1/runs?target=beta&limit=1&offset=1');
    assert.deepEqual(
      offset.json.items.map((run: { id: string }) => run.id),
      [created[3]],
    );

    for (const query of [
      'limit=201',
      'limit=0',
      'limit=-1',
      'limit=abc',
      'limit=99999999999999999999',
      'offset=-1',
      'offset=100000000',
      'status=stuck',
      'kind=x',
      'cursor=!!',
      'cursor=bm9wZQ',
      'cursor=WzEsMl0&offset=1',
    ]) {
      assertError(await api.request('GET', `/api/v1/runs?${query}`), 400, 'INVALID_INPUT');
    }
    assertError(await api.request('GET', '/api/v1/runs?target=nobody'), 404, 'TARGET_NOT_FOUND');
    assertError(await api.request('GET', `/api/v1/runs/${UNKNOWN_ID}`), 404, 'RUN_NOT_FOUND');
    assertError(await api.request('GET', '/api/v1/runs/not-a-uuid'), 400, 'INVALID_INPUT');
    assertError(await api.request('GET', `/api/v1/runs/${created[2]}/artifacts`), 404, 'NOT_FOUND');
  });

  it('runs: trigger answers 201 with the run; cancel a queued run; cancelling a finished one is 409', async () => {
    await createTarget(catalog.pool, { name: 'triggered', databaseUrl: 'postgres://u@h/t', storeUrl: 'file:///tmp/t' });
    const triggered = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: 'triggered' } });
    assert.equal(triggered.status, 201, triggered.text);
    assert.equal(triggered.json.status, 'queued');
    assert.equal(triggered.json.targetName, 'triggered');
    assert.equal(triggered.json.kind, 'backup');
    const cancelled = await api.request('POST', `/api/v1/runs/${triggered.json.id}/cancel`, { token: api.tokens.operator });
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.json.status, 'cancelled');
    assertError(await api.request('POST', `/api/v1/runs/${triggered.json.id}/cancel`), 409, 'RUN_ALREADY_TERMINAL');
    assertError(await api.request('POST', `/api/v1/runs/${UNKNOWN_ID}/cancel`), 404, 'RUN_NOT_FOUND');
    assertError(await api.request('POST', '/api/v1/runs', { body: { target: 'nobody' } }), 404, 'TARGET_NOT_FOUND');
    // The JSON Content-Type with no body is "no body", not a parse error.
    const second = await api.request('POST', '/api/v1/runs', { body: { target: 'triggered' } });
    const emptyJson = await api.request('POST', `/api/v1/runs/${second.json.id}/cancel`, { rawBody: '', headers: { 'content-type': 'application/json' } });
    assert.equal(emptyJson.status, 200, emptyJson.text);
    assertError(await api.request('POST', `/api/v1/runs/${UNKNOWN_ID}/verify`), 404, 'RUN_NOT_FOUND');
    assertError(await api.request('POST', `/api/v1/runs/${second.json.id}/verify`), 400, 'INVALID_INPUT');
    assertError(await api.request('POST', `/api/v1/runs/${second.json.id}/restore`, { body: { databaseUrl: 'postgres://u:p@127.0.0.1:1/x' } }), 400, 'INVALID_INPUT');
  });

  it('roles: viewer reads, operator acts on runs, admin manages targets and tokens', async () => {
    const target = await createTarget(catalog.pool, { name: 'roles', databaseUrl: 'postgres://u@h/r', storeUrl: 'file:///tmp/r', exclusive: false });
    const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 60_000 });
    const { viewer, operator } = api.tokens;
    const newTarget = { name: 'forbidden', databaseUrl: 'postgres://u@h/f' };

    assert.equal((await api.request('GET', '/api/v1/runs', { token: viewer })).status, 200);
    assert.equal((await api.request('GET', `/api/v1/runs/${run.id}`, { token: viewer })).status, 200);
    assert.equal((await api.request('GET', '/api/v1/targets/roles', { token: viewer })).status, 200);
    assertError(await api.request('POST', '/api/v1/runs', { token: viewer, body: { target: 'roles' } }), 403, 'FORBIDDEN');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/cancel`, { token: viewer }), 403, 'FORBIDDEN');
    assertError(await api.request('POST', '/api/v1/targets', { token: viewer, body: newTarget }), 403, 'FORBIDDEN');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/runner-token`, { token: viewer }), 403, 'FORBIDDEN');

    assertError(await api.request('POST', '/api/v1/targets', { token: operator, body: newTarget }), 403, 'FORBIDDEN');
    assertError(await api.request('PATCH', '/api/v1/targets/roles', { token: operator, body: { maxAttempts: 2 } }), 403, 'FORBIDDEN');
    assertError(await api.request('DELETE', '/api/v1/targets/roles', { token: operator }), 403, 'FORBIDDEN');
    assertError(await api.request('GET', '/api/v1/tokens', { token: operator }), 403, 'FORBIDDEN');
    assertError(await api.request('POST', '/api/v1/tokens', { token: operator, body: { name: 'x', role: 'admin' } }), 403, 'FORBIDDEN');
    const triggered = await api.request('POST', '/api/v1/runs', { token: operator, body: { target: 'roles' } });
    assert.equal(triggered.status, 201);
    assert.equal((await api.request('POST', `/api/v1/runs/${triggered.json.id}/cancel`, { token: operator })).status, 200);
    // Forbidden bodies are refused before they are read: a malformed one still gets 403.
    assertError(await api.request('POST', '/api/v1/targets', { token: viewer, rawBody: '{', headers: { 'content-type': 'application/json' } }), 403);

    // Missing, malformed, unknown and revoked tokens: 401.
    const missing = await api.request('GET', '/api/v1/runs', { token: null });
    assertError(missing, 401, 'UNAUTHORIZED');
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
    assertError(await api.request('GET', '/api/v1/runs', { token: 'garbage' }), 401, 'UNAUTHORIZED');
    assertError(await api.request('GET', '/api/v1/runs', { token: `bst_${'A'.repeat(43)}` }), 401, 'UNAUTHORIZED');
    assertError(await api.request('GET', '/api/v1/runs', { token: null, headers: { authorization: `Basic ${btoa('a:b')}` } }), 401, 'UNAUTHORIZED');
    assertError(await api.request('GET', '/api/v1/nothing-here', { token: null }), 401, 'UNAUTHORIZED');
    assertError(await api.request('GET', '/api/v1/nothing-here', { token: viewer }), 404, 'NOT_FOUND');

    const issued = await api.request('POST', '/api/v1/tokens', { body: { name: 'short-lived', role: 'operator' } });
    assert.equal(issued.status, 201, issued.text);
    assert.match(issued.json.token, /^bst_/);
    assert.equal((await api.request('GET', '/api/v1/runs', { token: issued.json.token })).status, 200);
    const listed = await api.request('GET', '/api/v1/tokens');
    assert.ok(listed.json.items.some((t: { id: string }) => t.id === issued.json.id));
    assert.ok(!listed.text.includes(issued.json.token), 'a token value in the token list');
    assert.ok(!/[0-9a-f]{64}/.test(listed.text), 'a token hash in the token list');
    const revoked = await api.request('DELETE', `/api/v1/tokens/${issued.json.id}`);
    assert.equal(revoked.status, 200);
    assert.ok(revoked.json.revokedAt);
    assertError(await api.request('GET', '/api/v1/runs', { token: issued.json.token }), 401, 'UNAUTHORIZED');
    assertError(await api.request('DELETE', `/api/v1/tokens/${UNKNOWN_ID}`), 404, 'TOKEN_NOT_FOUND');
  });

  it('a runner finalizes an artifact whose files include Supabase Storage objects (paths, any character, thousands of them)', async () => {
    // Finalize reads the artifact back: the files and the manifest are really in the target's store.
    const storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-api-storage-'));
    try {
      const target = await createTarget(catalog.pool, { name: 'remote-storage', databaseUrl: 'postgres://u@h/x', storeUrl: `file://${storeDir}`, exclusive: false });
      const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 60_000 });
      // Written before the claim (its attempt will be 1): 5,000 files take longer than this server's short lease.
      const prefix = artifactPrefix(target.name, run.createdAt, run.id, 1);
      const manifestFiles: ManifestFile[] = [];
      const write = async (name: string, extra: Partial<ManifestFile>) => {
        const bytes = Buffer.from(`content of ${name}`);
        await fs.mkdir(path.dirname(path.join(storeDir, prefix, name)), { recursive: true });
        await fs.writeFile(path.join(storeDir, prefix, name), bytes);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        manifestFiles.push({ name, role: 'schema', format: 'sql', size: bytes.length, sha256, uncompressedSize: bytes.length, ...extra } as ManifestFile);
      };
      for (const [name, role] of [
        ['roles.sql.zst', 'roles'],
        ['schema.sql.zst', 'schema'],
        ['data.sql.zst', 'data'],
      ] as const)
        await write(name, { role });
      for (let i = 0; i < 5000; i++) {
        await write(`storage/avatars/user ${i}/pictüre %2E ${i}.png.zst`, { role: 'storage', format: 'object', object: { bucket: 'avatars', key: `user ${i}/pictüre . ${i}.png` } });
      }
      const manifest = manifestSchema.parse({
        format: MANIFEST_FORMAT,
        formatVersion: MANIFEST_VERSION,
        backstopVersion: 'test',
        runId: run.id,
        attempt: 1,
        target: target.name,
        profile: 'supabase',
        createdAt: run.createdAt,
        source: { serverVersion: '17.0', serverVersionNum: 170000, database: 'x' },
        pgDump: { version: '17.0', options: [], snapshot: true },
        compression: { algorithm: 'zstd', level: 3 },
        encryption: null,
        files: manifestFiles,
        storage: { buckets: ['avatars'] },
        tables: [],
        timings: { dumpMs: 1, totalMs: 1 },
      });
      const manifestBytes = Buffer.from(JSON.stringify(manifest));
      await fs.writeFile(path.join(storeDir, prefix, 'manifest.json'), manifestBytes);
      const artifact = {
        storeUrl: `file://${storeDir}`,
        prefix,
        manifest: { name: 'manifest.json', size: manifestBytes.length, sha256: createHash('sha256').update(manifestBytes).digest('hex') },
        files: manifestFiles.map((file) => ({ name: file.name, size: file.size, sha256: file.sha256 })),
      };
      const token = (await api.request('POST', `/api/v1/runs/${run.id}/runner-token`, { token: api.tokens.operator })).json.token as string;
      const claim = await api.request('POST', `/api/v1/runs/${run.id}/claim`, { token, body: {} });
      assert.equal(claim.status, 200, claim.text);
      assert.equal(claim.json.run.attempt, 1);
      // The server reads 5,003 files back, longer than this server's 2 s lease on a loaded
      // machine: as a real runner's heartbeat thread does, keep renewing until finalize answers.
      let finalizing = true;
      const renewing = (async () => {
        while (finalizing) {
          await api.request('POST', `/api/v1/runs/${run.id}/heartbeat`, { token, body: { leaseId: claim.json.leaseId } });
          await setTimeout(claim.json.heartbeatIntervalMs as number);
        }
      })();
      const finalized = await api
        .request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: { leaseId: claim.json.leaseId, outcome: 'succeeded', artifact } })
        .finally(() => (finalizing = false));
      await renewing;
      assert.equal(finalized.status, 200, finalized.text.slice(0, 500));
      const recorded = await getRun(catalog.pool, run.id);
      assert.equal(recorded.status, 'succeeded');
      assert.equal(recorded.artifact?.files.length, 5003);
      assert.equal(recorded.artifact?.files.at(-1)?.name, 'storage/avatars/user 4999/pictüre %2E 4999.png.zst');
    } finally {
      await fs.rm(storeDir, { recursive: true, force: true });
    }
  });

  it('runner tokens: claim, heartbeat, events and finalize of their own run, and nothing else', async () => {
    const target = await createTarget(catalog.pool, { name: 'remote', databaseUrl: 'postgres://u@h/x', storeUrl: 'file:///tmp/x', exclusive: false });
    const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 60_000 });
    const other = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 60_000 });
    const issued = await api.request('POST', `/api/v1/runs/${run.id}/runner-token`, { token: api.tokens.operator });
    assert.equal(issued.status, 201, issued.text);
    const token = issued.json.token as string;
    assert.match(token, /^bsr_/);

    assertError(await api.request('GET', '/api/v1/targets', { token }), 403, 'FORBIDDEN');
    assertError(await api.request('GET', `/api/v1/runs/${run.id}`, { token }), 403, 'FORBIDDEN');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/cancel`, { token }), 403, 'FORBIDDEN');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/runner-token`, { token }), 403, 'FORBIDDEN');
    assertError(await api.request('POST', `/api/v1/runs/${other.id}/claim`, { token, body: {} }), 403, 'FORBIDDEN');
    assertError(await api.request('GET', '/api/v1/nothing-here', { token }), 403, 'FORBIDDEN');

    const claim = await api.request('POST', `/api/v1/runs/${run.id}/claim`, { token, body: { claimedBy: 'github:acme/app#42' } });
    assert.equal(claim.status, 200, claim.text);
    assert.match(claim.json.leaseId, /^[0-9a-f-]{36}$/);
    assert.equal(claim.json.run.status, 'running');
    assert.equal(claim.json.run.claimedBy, 'github:acme/app#42');
    assert.ok(claim.json.heartbeatIntervalMs < claim.json.leaseTtlMs);
    assert.equal('leaseId' in claim.json.run, false, 'the run view never carries the lease');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/claim`, { token }), 409, 'RUN_NOT_CLAIMABLE');
    const leaseId = claim.json.leaseId as string;

    const beat = await api.request('POST', `/api/v1/runs/${run.id}/heartbeat`, { token, body: { leaseId, progress: sampleProgress() } });
    assert.equal(beat.status, 200, beat.text);
    assert.equal(beat.json.cancelRequested, false);
    assert.deepEqual(withoutTimestamp((await getRun(catalog.pool, run.id)).progress), sampleProgress());
    // Progress in another shape is left out; the lease is renewed all the same.
    const odd = await api.request('POST', `/api/v1/runs/${run.id}/heartbeat`, { token, body: { leaseId, progress: { bytes: 1024, note: '<script>' } } });
    assert.equal(odd.status, 200, odd.text);
    assert.deepEqual(withoutTimestamp((await getRun(catalog.pool, run.id)).progress), sampleProgress());
    // Between heartbeats, progress alone: recorded, shown with the run; refused in another shape or without the lease.
    const moved = sampleProgress({ bytesDone: 8192, bytesDumped: 8192, percent: 50 });
    const report = await api.request('POST', `/api/v1/runs/${run.id}/progress`, { token, body: { leaseId, progress: { ...moved, updatedAt: '2000-01-01T00:00:00Z', extra: 1 } } });
    assert.equal(report.status, 204, report.text);
    const shown = (await api.request('GET', `/api/v1/runs/${run.id}`)).json.progress;
    assert.deepEqual(withoutTimestamp(shown), moved, 'unknown fields are dropped');
    assert.notEqual(shown.updatedAt, '2000-01-01T00:00:00Z', "the time is the catalog's, never the runner's");
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/progress`, { token, body: { leaseId, progress: { ...moved, percent: 250 } } }), 400, 'INVALID_INPUT');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/progress`, { token, body: { leaseId: UNKNOWN_ID, progress: moved } }), 409, 'LEASE_LOST');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/heartbeat`, { token, body: { leaseId: UNKNOWN_ID } }), 409, 'LEASE_LOST');
    const event = await api.request('POST', `/api/v1/runs/${run.id}/events`, { token, body: { leaseId, kind: 'dump_started', message: 'remote dump' } });
    assert.equal(event.status, 204, event.text);
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/events`, { token, body: { leaseId, kind: 'finished', message: 'fake' } }), 400);
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: { leaseId, outcome: 'succeeded' } }), 400, 'INVALID_INPUT');

    // Artifact file names are paths under the prefix (Supabase Storage objects are
    // `storage/<bucket>/<key>`), and can never leave it.
    const artifactWith = (name: string) => ({
      storeUrl: 'file:///tmp/x',
      prefix: 'remote/2026/11/run/attempt-1/',
      manifest: { name: 'manifest.json', size: 1, sha256: 'a'.repeat(64) },
      files: [{ name, size: 1, sha256: 'b'.repeat(64) }],
    });
    for (const name of ['../escape', 'storage/../../x', '/absolute', 'a//b', 'storage/b/', 'tab\there']) {
      const refused = await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: { leaseId, outcome: 'succeeded', artifact: artifactWith(name) } });
      assertError(refused, 400, 'INVALID_INPUT');
    }
    assert.equal((await getRun(catalog.pool, run.id)).status, 'running', 'a refused finalize changes nothing');

    // A cancel reaches the runner through its heartbeat.
    await api.request('POST', `/api/v1/runs/${run.id}/cancel`, { token: api.tokens.operator });
    const told = await api.request('POST', `/api/v1/runs/${run.id}/heartbeat`, { token, body: { leaseId } });
    assert.equal(told.json.cancelRequested, true);

    const finalBody = { leaseId, outcome: 'cancelled', error: { code: 'CANCELLED', message: 'stopped on request' } };
    const finalized = await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: finalBody });
    assert.equal(finalized.status, 200, finalized.text);
    assert.equal(finalized.json.status, 'cancelled');
    assert.equal((await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: finalBody })).status, 200, 'finalize is idempotent');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: { ...finalBody, outcome: 'failed' } }), 409, 'LEASE_LOST');
    // The run ended, and its token with it (only a repeated finalize and the job's report still open).
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/heartbeat`, { token, body: { leaseId } }), 401, 'UNAUTHORIZED');
    assertError(await api.request('POST', `/api/v1/runs/${run.id}/runner-token`), 409, 'RUN_ALREADY_TERMINAL');

    // A newer token replaces the older one.
    const first = await api.request('POST', `/api/v1/runs/${other.id}/runner-token`);
    const second = await api.request('POST', `/api/v1/runs/${other.id}/runner-token`);
    assertError(await api.request('POST', `/api/v1/runs/${other.id}/claim`, { token: first.json.token }), 401, 'UNAUTHORIZED');
    assert.equal((await api.request('POST', `/api/v1/runs/${other.id}/claim`, { token: second.json.token })).status, 200);
    assertError(await api.request('POST', `/api/v1/runs/${UNKNOWN_ID}/heartbeat`, { body: { leaseId: UNKNOWN_ID } }), 404, 'RUN_NOT_FOUND');
  });

  it('request errors are JSON 4xx: malformed JSON, wrong content type, oversized bodies', async () => {
    const json = { 'content-type': 'application/json' };
    assertError(await api.request('POST', '/api/v1/runs', { rawBody: '{"target": ', headers: json }), 400, 'INVALID_INPUT');
    assertError(await api.request('POST', '/api/v1/runs', { rawBody: '{"__proto__": {"x": 1}, "target": "a"}', headers: json }), 400, 'INVALID_INPUT');
    assertError(await api.request('POST', '/api/v1/runs', { rawBody: '<run/>', headers: { 'content-type': 'application/xml' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    assertError(await api.request('POST', '/api/v1/runs', { rawBody: 'target=a', headers: { 'content-type': 'text/plain' } }), 400, 'INVALID_INPUT');
    assertError(await api.request('POST', '/api/v1/runs'), 400, 'INVALID_INPUT');
    const huge = JSON.stringify({ target: 'a', padding: 'x'.repeat(300 * 1024) });
    assertError(await api.request('POST', '/api/v1/runs', { rawBody: huge, headers: json }), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('no response body or log line ever contained a secret or a token', () => {
    assert.ok(api.bodies.length > 50);
    assert.ok(api.logs.length > 5);
    const tokens = Object.values(api.tokens);
    for (const text of [...api.bodies, ...api.logs]) {
      for (const secret of secrets) assert.ok(!text.includes(secret), `secret ${secret} in: ${text.slice(0, 300)}`);
    }
    for (const line of api.logs) {
      for (const token of tokens) assert.ok(!line.includes(token), `an API token in a log line: ${line.slice(0, 300)}`);
    }
  });
});

describe('HTTP API without its catalog', { timeout: 120_000 }, () => {
  let api: TestServer;

  before(async () => {
    api = await startTestServer({ catalogUrl: `postgres://backstop:pw@127.0.0.1:${await closedPort()}/backstop`, tokens: false });
  });

  after(async () => {
    await api?.close();
  });

  it('stays alive, reports not ready (503), and answers API calls with 503 CATALOG_UNAVAILABLE', async () => {
    assert.equal((await api.request('GET', '/healthz', { token: null })).status, 200);
    const ready = await api.request('GET', '/readyz', { token: null });
    assertError(ready, 503, 'CATALOG_UNAVAILABLE');
    assertError(await api.request('GET', '/api/v1/runs', { token: `bst_${'A'.repeat(43)}` }), 503, 'CATALOG_UNAVAILABLE');
    assertError(await api.request('GET', '/api/v1/runs', { token: null }), 401, 'UNAUTHORIZED');
    const metrics = await api.request('GET', '/metrics', { token: null });
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^backstop_catalog_up 0$/m);
  });
});
