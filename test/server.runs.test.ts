import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { claimRunById } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { adminQuery, adminUrl, createSampleDatabase, createTestCatalog, createTestDatabase, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { readEventStream, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The server with its in-process worker, against real PostgreSQL and pg_dump: a triggered
 * run streams its events live over SSE until it ends, can be cancelled mid-dump, restored,
 * verified, and shows up in /metrics. A table lock makes pg_dump wait exactly as long as a
 * test needs it "in the middle".
 */

describe('server with a worker: runs, live events, cancel, restore, verify, metrics', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  let lock: { release(): Promise<void> } | undefined;
  const password = decodeURIComponent(new URL(adminUrl()).password);

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(300);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-server-store-'));
    // Verification drills create their scratch databases on the test server, not in an embedded
    // one. The worker runs in this process, next to the test's own HTTP clients: a 10 s lease
    // keeps a busy machine from reaping its runs (the reaper test below claims with its own TTL).
    api = await startTestServer({
      catalogUrl: catalog.url,
      worker: true,
      sseHeartbeatMs: 200,
      env: {
        BACKSTOP_STORE: `file://${storeDir}`,
        BACKSTOP_SCRATCH_URL: adminUrl(),
        BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres',
        BACKSTOP_LEASE_TTL: '10',
        BACKSTOP_HEARTBEAT_INTERVAL: '1',
      },
    });
    const created = await api.request('POST', '/api/v1/targets', { body: { name: 'sample', databaseUrl: source.url } });
    assert.equal(created.status, 201, created.text);
  });

  after(async () => {
    await lock?.release();
    await api?.close();
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  const openStream = async (runId: string, lastEventId?: number) =>
    fetch(`${api.url}/api/v1/runs/${runId}/events`, {
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${api.tokens.viewer}`,
        ...(lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) }),
      },
    });

  let succeededRunId: string;

  it('trigger → the worker executes it → the SSE stream shows every transition live, then ends', async () => {
    lock = await holdTableLock(source.url, 'orders');
    const triggered = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: 'sample' } });
    assert.equal(triggered.status, 201);
    const runId = triggered.json.id as string;
    const response = await openStream(runId);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const stream = readEventStream(response);
    // pg_dump is blocked on our lock: the run is running and the stream is open and waiting.
    await waitFor('claimed event on the stream', () => stream.messages.some((m) => JSON.parse(m.data).kind === 'claimed'));
    await waitFor('pg_dump connected', async () => (await dumpSessions(runId)) > 0);
    await waitFor('a heartbeat comment', () => stream.comments.includes('heartbeat'));
    const seenBeforeRelease = stream.messages.length;
    await lock.release();
    lock = undefined;
    await stream.ended;

    const events = stream.messages.filter((m) => m.event === 'message').map((m) => ({ id: Number(m.id), ...JSON.parse(m.data) }));
    const kinds = events.map((e) => e.kind);
    assert.equal(kinds[0], 'created');
    assert.equal(kinds[1], 'claimed');
    assert.equal(kinds.at(-1), 'finished');
    assert.ok(kinds.includes('dump_stored'), kinds.join(','));
    assert.ok(stream.messages.length > seenBeforeRelease, 'events arrived after the stream was open, not only in the replay');
    assert.deepEqual(
      events.map((e) => e.id),
      [...events.map((e) => e.id)].sort((a, b) => a - b),
    );
    const end = stream.messages.at(-1)!;
    assert.equal(end.event, 'end');
    assert.deepEqual(JSON.parse(end.data), { runId, status: 'succeeded' });

    // Reconnecting after the claimed event replays only what came later; after the last, 204.
    const claimedId = events[1]!.id;
    const resumed = readEventStream(await openStream(runId, claimedId));
    await resumed.ended;
    const resumedIds = resumed.messages.filter((m) => m.event === 'message').map((m) => Number(m.id));
    assert.deepEqual(
      resumedIds,
      events.slice(2).map((e) => e.id),
    );
    assert.equal((await openStream(runId, events.at(-1)!.id)).status, 204);
    const badId = await openStream(runId, -1);
    assert.equal(badId.status, 400);

    const json = await api.request('GET', `/api/v1/runs/${runId}/events`, { token: api.tokens.viewer });
    assert.deepEqual(
      json.json.items.map((e: { kind: string }) => e.kind),
      kinds,
    );
    succeededRunId = runId;
  });

  it('artifacts: files, sizes and SHA-256 of the run, the manifest last', async () => {
    const result = await api.request('GET', `/api/v1/runs/${succeededRunId}/artifacts`, { token: api.tokens.viewer });
    assert.equal(result.status, 200, result.text);
    const run = await getRun(catalog.pool, succeededRunId);
    assert.deepEqual(result.json.files, run.artifact!.files);
    assert.deepEqual(result.json.manifest, run.artifact!.manifest);
    assert.equal(
      result.json.totalBytes,
      run.artifact!.files.reduce((sum, f) => sum + f.size, run.artifact!.manifest.size),
    );
    for (const file of [...result.json.files, result.json.manifest]) {
      const stat = await fs.stat(path.join(storeDir, result.json.prefix, file.name));
      assert.equal(stat.size, file.size);
      assert.match(file.sha256, /^[0-9a-f]{64}$/);
    }
  });

  it('cancel of a running run: cancelling at once, cancelled once the runner stopped', async () => {
    lock = await holdTableLock(source.url, 'orders');
    const triggered = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: 'sample' } });
    const runId = triggered.json.id as string;
    await waitFor('pg_dump of the run connected', async () => (await dumpSessions(runId)) > 0);
    const stream = readEventStream(await openStream(runId));
    const cancelled = await api.request('POST', `/api/v1/runs/${runId}/cancel`, { token: api.tokens.operator });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.ok(['cancelling', 'cancelled'].includes(cancelled.json.status), cancelled.json.status);
    await stream.ended;
    assert.deepEqual(JSON.parse(stream.messages.at(-1)!.data), { runId, status: 'cancelled' });
    const run = await api.request('GET', `/api/v1/runs/${runId}`, { token: api.tokens.viewer });
    assert.equal(run.json.status, 'cancelled');
    assert.equal(run.json.error.code, 'CANCELLED');
    await lock.release();
    lock = undefined;
  });

  it('restore in the background: 202, then a restored event; the copy has the rows', async () => {
    const destination = await createTestDatabase('restored');
    try {
      // An operator restores only into a destination the target allow-lists.
      const server = new URL(destination.url);
      const allowed = await api.request('PATCH', '/api/v1/targets/sample', { body: { options: { restoreTo: [`${server.hostname}:${server.port || 5432}/*`] } } });
      assert.equal(allowed.status, 200, allowed.text);
      const accepted = await api.request('POST', `/api/v1/runs/${succeededRunId}/restore`, {
        token: api.tokens.operator,
        // The test server's role is a superuser: accepted by name (privilegedRole).
        body: { databaseUrl: destination.url, jobs: 1, privilegedRole: 'postgres' },
      });
      assert.equal(accepted.status, 202, accepted.text);
      const outcome = await waitFor(
        'restore result event',
        async () => {
          const events = await api.request('GET', `/api/v1/runs/${succeededRunId}/events`, { token: api.tokens.viewer });
          return events.json.items.find((e: { kind: string }) => e.kind === 'restored' || e.kind === 'restore_failed');
        },
        30_000,
      );
      assert.equal(outcome.kind, 'restored', outcome.message);
      const [row] = await adminQuery<{ count: string }>('select count(*) as count from orders', [], destination.url);
      assert.equal(Number(row!.count), 300);
      // Restoring again into the now non-empty database fails, as an event, not as a crash.
      await api.request('POST', `/api/v1/runs/${succeededRunId}/restore`, { body: { databaseUrl: destination.url, privilegedRole: 'postgres' } });
      const failed = await waitFor(
        'restore_failed event',
        async () => {
          const events = await api.request('GET', `/api/v1/runs/${succeededRunId}/events`);
          return events.json.items.find((e: { kind: string }) => e.kind === 'restore_failed');
        },
        30_000,
      );
      assert.equal(failed.data.code, 'RESTORE_TARGET_NOT_EMPTY');
      assert.equal(api.server.app.server.listening, true);
    } finally {
      await destination.drop();
    }
  });

  it('verify queues a verification drill that the worker executes', async () => {
    const queued = await api.request('POST', `/api/v1/runs/${succeededRunId}/verify`, { token: api.tokens.operator });
    assert.equal(queued.status, 201, queued.text);
    assert.equal(queued.json.kind, 'verify');
    assert.equal(queued.json.subjectRunId, succeededRunId);
    const finished = await waitFor(
      'verification finished',
      async () => {
        const run = await api.request('GET', `/api/v1/runs/${queued.json.id}`);
        return ['succeeded', 'failed', 'cancelled', 'timed_out'].includes(run.json.status) ? run.json : null;
      },
      60_000,
    );
    assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error));
    const verified = await api.request('GET', `/api/v1/runs/${succeededRunId}`);
    assert.equal(verified.json.verification?.status, 'passed');
  });

  it('metrics: runs by status, durations and sizes of finished runs, reaper actions', async () => {
    // A run claimed by a runner that then vanishes: the server's reaper ends it.
    const target = await createTarget(catalog.pool, { name: 'vanished', databaseUrl: source.url, storeUrl: `file://${storeDir}`, exclusive: false });
    const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 60_000 });
    await claimRunById(catalog.pool, run.id, { leaseTtlMs: 100, claimedBy: 'a runner that dies' });
    await waitFor('the reaper ended the run', async () => (await getRun(catalog.pool, run.id)).status === 'timed_out', 10_000);

    const text = await waitFor(
      'finished runs in the histograms',
      async () => {
        const metrics = await api.request('GET', '/metrics', { token: null });
        return /^backstop_run_duration_seconds_count\{kind="backup",status="succeeded"\} [1-9]/m.test(metrics.text) &&
          /^backstop_run_duration_seconds_count\{kind="backup",status="timed_out"\} [1-9]/m.test(metrics.text)
          ? metrics.text
          : null;
      },
      10_000,
    );
    assert.match(text, /^backstop_runs\{status="succeeded"\} [1-9]/m);
    assert.match(text, /^backstop_runs\{status="cancelled"\} [1-9]/m);
    assert.match(text, /^backstop_run_artifact_bytes_count\{kind="backup"\} [1-9]/m);
    assert.match(text, /^backstop_lease_expiries_total [1-9]/m);
    assert.match(text, /^backstop_reaper_actions_total\{action="timed_out",reason="LEASE_EXPIRED"\} [1-9]/m);
    assert.match(text, /^backstop_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/runs",status="201"\} [1-9]/m);
    // Each finished run is observed once, however often /metrics is scraped.
    const again = (await api.request('GET', '/metrics', { token: null })).text;
    const count = (body: string) => /^backstop_run_duration_seconds_count\{kind="backup",status="succeeded"\} (\d+)/m.exec(body)![1];
    assert.equal(count(again), count(text));
    api.server.metrics.schedulerActions.inc({ action: 'enqueued' });
    assert.match((await api.request('GET', '/metrics', { token: null })).text, /^backstop_scheduler_actions_total\{action="enqueued"\} 1$/m);
  });

  it('no response body, log line or event contained the database password', async () => {
    assert.ok(password.length >= 8);
    for (const body of api.bodies) assert.ok(!body.includes(password), `password in a response: ${body.slice(0, 200)}`);
    for (const line of api.logs) assert.ok(!line.includes(password), `password in a log line: ${line.slice(0, 200)}`);
    const events = await catalog.pool.query<{ text: string }>('select row_to_json(e)::text as text from backstop.run_events e');
    for (const { text } of events.rows) assert.ok(!text.includes(password), `password in an event: ${text}`);
  });
});
