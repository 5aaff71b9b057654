import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appendRunEvent } from '../src/db/runEvents.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { createApiToken } from '../src/db/tokens.ts';
import { adminQuery, createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { closedPort, readEventStream, startTestServer, type HttpResult, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The server's own boundaries, attacked for real against running servers: restore
 * destinations (a port scanner through the API), event streams outliving their token or
 * piling up, JSON nested to blow the stack, runner tokens outliving their run, /metrics on
 * the network, and the headers that keep browsers from sniffing, framing or caching answers.
 */

const TEST = { timeout: 120_000 };

function assertRefusal(result: HttpResult, status: number, code: string, says?: RegExp): void {
  assert.equal(result.status, status, `expected ${status}, got ${result.status}: ${result.text}`);
  assert.equal(result.json?.error?.code, code, result.text);
  if (says) assert.match(result.json.error.message, says);
}

/** Resolves with `promise`, or fails the test when it has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, failure: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(failure)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** 10,000 arrays inside each other, under a key every route's schema would otherwise look at. */
const deepJson = (key: string) => `{"${key}":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;

describe('server boundaries: streams, deep JSON, runner tokens, /metrics, headers', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let api: TestServer;
  let exposed: TestServer;
  let targetId: string;

  before(async () => {
    catalog = await createTestCatalog();
    // No worker: the runs these tests create stay where the tests put them.
    api = await startTestServer({
      catalogUrl: catalog.url,
      env: { BACKSTOP_MAX_STREAMS_PER_TOKEN: '3', BACKSTOP_LEASE_TTL: '30', BACKSTOP_HEARTBEAT_INTERVAL: '1' },
    });
    // The same catalog, served on every address of the machine.
    exposed = await startTestServer({ catalogUrl: catalog.url, host: '0.0.0.0', tokens: false });
    targetId = (await createTarget(catalog.pool, { name: 'quiet', databaseUrl: 'postgres://u@h/x', storeUrl: 'file:///tmp/trust-quiet', exclusive: false })).id;
  });

  after(async () => {
    await exposed?.close();
    await api?.close();
    await catalog?.close();
  });

  const newRun = () => createRun(catalog.pool, { targetId, trigger: 'test', runDeadlineMs: 600_000 });

  const openStream = (path: string, token: string) => fetch(`${api.url}${path}`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` } });

  for (const [what, streamPath] of [
    ['a run’s event stream', (runId: string) => `/api/v1/runs/${runId}/events`],
    ['the feed of all runs', () => '/api/v1/events'],
  ] as const) {
    it(`${what}: once its token is revoked, an event recorded after that is never delivered and the stream ends`, TEST, async () => {
      const run = await newRun();
      const holder = await createApiToken(catalog.pool, { name: `revoked ${streamPath('x').length}`, role: 'viewer' });
      const response = await openStream(streamPath(run.id), holder.token);
      assert.equal(response.status, 200);
      const stream = readEventStream(response);
      await appendRunEvent(catalog.pool, { runId: run.id, kind: 'before_revocation', message: 'seen while the token is live' });
      await waitFor('the event recorded before the revocation', () => stream.messages.some((m) => m.data.includes('before_revocation')));

      const revoked = await api.request('DELETE', `/api/v1/tokens/${holder.id}`);
      assert.equal(revoked.status, 200, revoked.text);
      await appendRunEvent(catalog.pool, { runId: run.id, kind: 'after_revocation', message: 'must never reach the revoked token' });
      await within(stream.ended, 20_000, 'the stream of a revoked token is still open');
      assert.equal(
        stream.messages.some((m) => m.data.includes('after_revocation')),
        false,
        'an event reached a revoked token',
      );
      // Reconnecting, as every client does, is refused with what to do.
      assertRefusal(
        await api.request('GET', streamPath(run.id), { token: holder.token, headers: { accept: 'text/event-stream' } }),
        401,
        'UNAUTHORIZED',
        /revoked.*backstop token create/,
      );
    });
  }

  it('event streams per token are capped: one more answers 429 saying what to do; closing one makes room', TEST, async () => {
    const holder = await createApiToken(catalog.pool, { name: 'many tabs', role: 'viewer' });
    const controllers = Array.from({ length: 3 }, () => new AbortController());
    try {
      for (const controller of controllers) {
        const response = await fetch(`${api.url}/api/v1/events`, {
          headers: { accept: 'text/event-stream', authorization: `Bearer ${holder.token}` },
          signal: controller.signal,
        });
        assert.equal(response.status, 200);
        readEventStream(response).ended.catch(() => {});
      }
      const over = await api.request('GET', '/api/v1/events', { token: holder.token, headers: { accept: 'text/event-stream' } });
      assertRefusal(over, 429, 'TOO_MANY_STREAMS', /already holds 3 open event streams.*BACKSTOP_MAX_STREAMS_PER_TOKEN.*Close some/);
      // Another token is not held back by this one's streams.
      const other = await openStream('/api/v1/events', api.tokens.viewer);
      assert.equal(other.status, 200);
      await other.body?.cancel();

      controllers[0]!.abort();
      await waitFor('room for a new stream once one closed', async () => {
        const response = await openStream('/api/v1/events', holder.token);
        await response.body?.cancel();
        return response.status === 200;
      });
    } finally {
      for (const controller of controllers) controller.abort();
    }
  });

  it('JSON nested 10,000 deep is a 400 that says so on every route with a body, the runner finalize route too', TEST, async () => {
    const run = await newRun();
    const issued = await api.request('POST', `/api/v1/runs/${run.id}/runner-token`, { token: api.tokens.operator });
    const runnerToken = issued.json.token as string;
    const claim = await api.request('POST', `/api/v1/runs/${run.id}/claim`, { token: runnerToken, body: {} });
    assert.equal(claim.status, 200, claim.text);
    const json = { 'content-type': 'application/json' };
    const attempts: Array<[string, string, string | undefined, string]> = [
      ['POST', '/api/v1/targets', undefined, deepJson('name')],
      ['PATCH', '/api/v1/targets/quiet', undefined, deepJson('options')],
      ['POST', '/api/v1/runs', api.tokens.operator, deepJson('target')],
      ['POST', '/api/v1/tokens', undefined, deepJson('name')],
      ['POST', `/api/v1/runs/${run.id}/finalize`, runnerToken, deepJson('artifact')],
      ['POST', `/api/v1/runs/${run.id}/events`, runnerToken, deepJson('data')],
      ['POST', `/api/v1/runs/${run.id}/heartbeat`, runnerToken, deepJson('progress')],
    ];
    for (const [method, route, token, rawBody] of attempts) {
      const answer = await api.request(method, route, { token, rawBody, headers: json });
      assertRefusal(answer, 400, 'INVALID_INPUT', /more than 64 levels deep.*Flatten it/);
    }
    // Brackets inside strings are text, not nesting; and a free-form event 60 levels deep is fine.
    let data: unknown = 'leaf [[[[{{{{';
    for (let level = 0; level < 60; level++) data = { level: data };
    const deepButFine = await api.request('POST', `/api/v1/runs/${run.id}/events`, {
      token: runnerToken,
      body: { leaseId: claim.json.leaseId, kind: 'note', message: '['.repeat(200), data },
    });
    assert.equal(deepButFine.status, 204, deepButFine.text);
    assert.equal((await getRun(catalog.pool, run.id)).status, 'running', 'the refused bodies changed nothing');
  });

  it('a runner token dies with its run: heartbeat, events and claim 401 after the end; a repeated finalize and the report still answer; runners never see restoreTo', TEST, async () => {
    const run = await newRun();
    const token = (await api.request('POST', `/api/v1/runs/${run.id}/runner-token`, { token: api.tokens.operator })).json.token as string;
    assert.equal((await api.request('PATCH', '/api/v1/targets/quiet', { body: { options: { restoreTo: ['restore.internal:5432/*'] } } })).status, 200);
    const claim = await api.request('POST', `/api/v1/runs/${run.id}/claim`, { token, body: {} });
    assert.equal(claim.status, 200, claim.text);
    assert.equal(claim.json.target.options.restoreTo, undefined, 'a runner learns where operators may restore');
    const leaseId = claim.json.leaseId as string;
    const finalBody = { leaseId, outcome: 'failed', error: { code: 'DUMP_FAILED', message: 'the runner gave up' } };
    assert.equal((await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: finalBody })).status, 200);

    const expired = /runner token of run .* has expired: the run ended \(failed\).*Trigger a new run/;
    assertRefusal(await api.request('POST', `/api/v1/runs/${run.id}/heartbeat`, { token, body: { leaseId } }), 401, 'UNAUTHORIZED', expired);
    assertRefusal(await api.request('POST', `/api/v1/runs/${run.id}/events`, { token, body: { leaseId, kind: 'late', message: 'after the end' } }), 401, 'UNAUTHORIZED', expired);
    assertRefusal(await api.request('POST', `/api/v1/runs/${run.id}/claim`, { token, body: {} }), 401, 'UNAUTHORIZED', expired);
    assertRefusal(await api.request('POST', `/api/v1/runs/${run.id}/release`, { token, body: { leaseId, reason: 'late' } }), 401, 'UNAUTHORIZED', expired);

    // A finalize whose answer was lost is repeated and gets the same success; the job's last step finds the run ended.
    const again = await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: finalBody });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.status, 'failed');
    const report = await api.request('POST', `/api/v1/runs/${run.id}/report`, { token, body: { jobStatus: 'failure' } });
    assert.equal(report.status, 200, report.text);
    assert.equal(report.json.ended, false);
    // Anything but the same finalize is still refused by the lease, not let through by the grace.
    assertRefusal(await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: { ...finalBody, outcome: 'cancelled' } }), 409, 'LEASE_LOST');

    // Long after the end, nothing opens at all.
    await catalog.pool.query(`update backstop.runs set finished_at = now() - interval '1 day', deadline_at = now() - interval '1 day' where id = $1`, [run.id]);
    assertRefusal(await api.request('POST', `/api/v1/runs/${run.id}/finalize`, { token, body: finalBody }), 401, 'UNAUTHORIZED', /has expired/);
    assertRefusal(await api.request('POST', `/api/v1/runs/${run.id}/report`, { token, body: { jobStatus: 'failure' } }), 401, 'UNAUTHORIZED', /has expired/);
  });

  it('a runner token expires at its run’s hard deadline, even before the reaper ends the run', TEST, async () => {
    const run = await newRun();
    const token = (await api.request('POST', `/api/v1/runs/${run.id}/runner-token`, { token: api.tokens.operator })).json.token as string;
    // The hard deadline passes with the run still queued (moved back in time, not waited for).
    await catalog.pool.query(`update backstop.runs set deadline_at = now() - interval '20 minutes', created_at = now() - interval '1 hour' where id = $1`, [run.id]);
    assertRefusal(await api.request('POST', `/api/v1/runs/${run.id}/claim`, { token, body: {} }), 401, 'UNAUTHORIZED', /has expired.*passed its deadline/);
  });

  it('/metrics: open on a loopback listener; on a server listening on 0.0.0.0, 401 without a token and 200 with any API token', TEST, async () => {
    const open = await fetch(`${api.url}/metrics`);
    assert.equal(open.status, 200);
    assert.match(await open.text(), /backstop_runs/);

    const refused = await fetch(`${exposed.url}/metrics`);
    assert.equal(refused.status, 401);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'UNAUTHORIZED');
    assert.match(body.error.message, /needs an API token.*viewer token is enough.*backstop token create --role viewer/);
    const revoked = await createApiToken(catalog.pool, { name: 'old scraper', role: 'viewer' });
    await api.request('DELETE', `/api/v1/tokens/${revoked.id}`);
    assert.equal((await fetch(`${exposed.url}/metrics`, { headers: { authorization: `Bearer ${revoked.token}` } })).status, 401);
    const scraped = await fetch(`${exposed.url}/metrics`, { headers: { authorization: `Bearer ${api.tokens.viewer}` } });
    assert.equal(scraped.status, 200);
    assert.match(await scraped.text(), /backstop_runs/);
    // Health checks stay open for load balancers.
    assert.equal((await fetch(`${exposed.url}/healthz`)).status, 200);
  });

  it('security headers on API answers (errors too), event streams and the dashboard, whose page still loads its modules', TEST, async () => {
    const base = (headers: Headers, where: string) => {
      assert.equal(headers.get('x-content-type-options'), 'nosniff', where);
      assert.equal(headers.get('referrer-policy'), 'no-referrer', where);
      assert.equal(headers.get('x-frame-options'), 'DENY', where);
    };
    for (const [path, token] of [
      ['/api/v1/targets', api.tokens.viewer],
      ['/api/v1/targets', null],
      ['/api/v1/nowhere', api.tokens.viewer],
      ['/healthz', null],
    ] as const) {
      const answer = await api.request('GET', path, { token });
      base(answer.headers, path);
      assert.equal(answer.headers.get('cache-control'), 'no-store', path);
      assert.match(answer.headers.get('content-security-policy') ?? '', /default-src 'none'.*frame-ancestors 'none'/, path);
    }
    const stream = await openStream('/api/v1/events', api.tokens.viewer);
    base(stream.headers, 'event stream');
    await stream.body?.cancel();

    const page = await fetch(`${api.url}/`);
    base(page.headers, 'dashboard page');
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    const html = await page.text();
    // Every script the page loads is its own (same origin), the import map is allowed by hash.
    for (const [, src] of html.matchAll(/<script[^>]* src="([^"]+)"/g)) assert.match(src!, /^\/ui\//);
    const module = await fetch(`${api.url}/ui/src/main.js`);
    assert.equal(module.status, 200);
    base(module.headers, 'dashboard module');
  });
});

describe('restore destinations: operators only into the allow-list, connection failures told generically', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  let backupId: string;

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(100);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-store-'));
    api = await startTestServer({
      catalogUrl: catalog.url,
      worker: true,
      env: { BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_LEASE_TTL: '10', BACKSTOP_HEARTBEAT_INTERVAL: '1' },
    });
    assert.equal((await api.request('POST', '/api/v1/targets', { body: { name: 'shop', databaseUrl: source.url } })).status, 201);
    const triggered = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: 'shop' } });
    backupId = triggered.json.id as string;
    await waitFor('the backup to succeed', async () => (await getRun(catalog.pool, backupId)).status === 'succeeded', 60_000);
  });

  after(async () => {
    await api?.close();
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  const eventsOf = async (runId: string) =>
    (await api.request('GET', `/api/v1/runs/${runId}/events`, { token: api.tokens.viewer })).json.items as Array<{ kind: string; message: string; data: Record<string, unknown> }>;

  it('an operator’s restore into an unlisted host:port is refused (403, saying what to do) before any connection is tried', TEST, async () => {
    const port = await closedPort();
    for (const databaseUrl of [
      `postgres://scan:x@127.0.0.1:${port}/anything`,
      // The URL's host is allow-listed below, but libpq would connect where ?host= says.
      `postgres://scan:x@allowed.example:5432/app?host=127.0.0.1&port=${port}`,
    ]) {
      const refused = await api.request('POST', `/api/v1/runs/${backupId}/restore`, { token: api.tokens.operator, body: { databaseUrl } });
      assertRefusal(refused, 403, 'FORBIDDEN', /restore|admin/);
      assert.match(refused.json.error.message, /(restoreTo|only an admin)/);
    }
    assert.equal(
      (await eventsOf(backupId)).some((event) => event.kind.startsWith('restore')),
      false,
      'a refused restore started anyway',
    );
  });

  it('an operator restores into an allow-listed destination; the allow-list is checked when a target is saved', TEST, async () => {
    const destination = await createTestDatabase('trust_restored');
    try {
      const url = new URL(destination.url);
      const entry = `${url.hostname}:${url.port || '5432'}/${url.pathname.slice(1)}`;
      const patched = await api.request('PATCH', '/api/v1/targets/shop', { body: { options: { restoreTo: ['other.example:5432/*', entry] } } });
      assert.equal(patched.status, 200, patched.text);
      assert.deepEqual(patched.json.options.restoreTo, ['other.example:5432/*', entry]);
      assertRefusal(await api.request('PATCH', '/api/v1/targets/shop', { body: { options: { restoreTo: ['no port here'] } } }), 400, 'INVALID_INPUT');

      // The test server's role is a superuser: accepted by name (privilegedRole).
      const started = await api.request('POST', `/api/v1/runs/${backupId}/restore`, { token: api.tokens.operator, body: { databaseUrl: destination.url, privilegedRole: 'postgres' } });
      assert.equal(started.status, 202, started.text);
      const restored = await waitFor('the restore to end', async () => (await eventsOf(backupId)).find((event) => event.kind === 'restored' || event.kind === 'restore_failed'), 60_000);
      assert.equal(restored.kind, 'restored', restored.message);
      const rows = await adminQuery<{ count: number }>('select count(*)::int as count from orders', [], destination.url);
      assert.equal(rows[0]!.count, 100);
    } finally {
      await destination.drop();
    }
  });

  it('an admin’s restore into a closed port fails with a generic message: no raw connection error in the events viewers read', TEST, async () => {
    const port = await closedPort();
    const before = (await eventsOf(backupId)).length;
    const started = await api.request('POST', `/api/v1/runs/${backupId}/restore`, { body: { databaseUrl: `postgres://scan:x@127.0.0.1:${port}/probe` } });
    assert.equal(started.status, 202, started.text);
    const failed = await waitFor('the restore to fail', async () => (await eventsOf(backupId)).slice(before).find((event) => event.kind === 'restore_failed'), 60_000);
    assert.match(failed.message, /^could not connect to the restore destination .*check its host, port, database and credentials/);
    assert.equal(failed.data.code, 'DATABASE_UNREACHABLE');
    const text = JSON.stringify((await eventsOf(backupId)).slice(before));
    for (const raw of [/ECONNREFUSED/i, /connection refused/i, /Cannot connect/]) assert.doesNotMatch(text, raw);
    // The details are for the server's log.
    assert.ok(
      api.logs.some((line) => /restore failed/.test(line) && /ECONNREFUSED|Cannot connect/.test(line)),
      'the server log lacks the details',
    );
  });
});
