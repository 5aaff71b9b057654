import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Artifact } from '../src/core/artifact.ts';
import { claimRunById, finalizeRun, renewLease } from '../src/db/runLeases.ts';
import { createRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { sampleProgress, withoutTimestamp } from './support/progress.ts';
import { readEventStream, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The read endpoints the dashboard is built on, over real HTTP against a real catalog: who am
 * I, the overview of every target, a target's history, every run's events as one live stream
 * (resumable, in id order even when ids commit out of order), and progress on a run's stream.
 */

const artifact = (bytes: number): Artifact => ({
  storeUrl: 'file:///tmp/backups',
  prefix: 'x/2026/01/run/attempt-1/',
  manifest: { name: 'manifest.json', size: 200, sha256: 'a'.repeat(64) },
  files: [{ name: 'dump.pgcustom.zst', size: bytes, sha256: 'b'.repeat(64) }],
});

describe('dashboard API: me, overview, history, the feed of all runs', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let api: TestServer;

  before(async () => {
    catalog = await createTestCatalog();
    api = await startTestServer({ catalogUrl: catalog.url });
  });

  after(async () => {
    for (const controller of streams) controller.abort();
    await api?.close();
    await catalog?.close();
  });

  /** A run of `targetId` taken through claim and finalize like a runner would. */
  const finishRun = async (targetId: string, outcome: 'succeeded' | 'failed', options: { kind?: 'backup' | 'verify'; subjectRunId?: string; bytes?: number } = {}) => {
    const run = await createRun(catalog.pool, { targetId, trigger: 'test', runDeadlineMs: 60_000, kind: options.kind, subjectRunId: options.subjectRunId });
    const claimed = await claimRunById(catalog.pool, run.id, { leaseTtlMs: 60_000, claimedBy: 'test' });
    await renewLease(catalog.pool, {
      runId: run.id,
      leaseId: claimed.leaseId,
      leaseTtlMs: 60_000,
      progress: sampleProgress({ phase: 'done', bytesDone: 5_000, bytesDumped: 5_000, totalBytes: 5_000, percent: 100, etaSeconds: 0 }),
    });
    return finalizeRun(catalog.pool, {
      runId: run.id,
      leaseId: claimed.leaseId,
      outcome,
      error: outcome === 'failed' ? { code: 'DUMP_FAILED', message: 'pg_dump exited with 1' } : null,
      artifact: outcome === 'succeeded' && options.kind !== 'verify' ? artifact(options.bytes ?? 1000) : null,
    });
  };

  it('me: the token’s name and role, for every role; 401 without a token', async () => {
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const me = await api.request('GET', '/api/v1/me', { token: api.tokens[role] });
      assert.equal(me.status, 200, me.text);
      assert.deepEqual({ name: me.json.name, role: me.json.role }, { name: `test ${role}`, role });
      assert.equal('token' in me.json, false);
    }
    assert.equal((await api.request('GET', '/api/v1/me', { token: null })).status, 401);
  });

  it('overview: health, last run, active run, newest good backup, last verification, next slot', async () => {
    const good = await createTarget(catalog.pool, { name: 'good', databaseUrl: 'postgres://u@h/good', storeUrl: 'file:///tmp/good', exclusive: false });
    const bad = await createTarget(catalog.pool, { name: 'bad', databaseUrl: 'postgres://u@h/bad', storeUrl: 'file:///tmp/bad' });
    await createTarget(catalog.pool, { name: 'fresh', databaseUrl: 'postgres://u@h/fresh', storeUrl: 'file:///tmp/fresh' });
    const late = await createTarget(catalog.pool, { name: 'late', databaseUrl: 'postgres://u@h/late', storeUrl: 'file:///tmp/late', schedule: { cron: '* * * * *', timezone: 'UTC' } });
    await catalog.pool.query(`update backstop.targets set created_at = now() - interval '1 hour' where id = $1`, [late.id]);

    const backup = await finishRun(good.id, 'succeeded', { bytes: 1000 });
    const drill = await finishRun(good.id, 'succeeded', { kind: 'verify', subjectRunId: backup.id });
    const queued = await createRun(catalog.pool, { targetId: good.id, trigger: 'test', runDeadlineMs: 60_000 });
    await finishRun(bad.id, 'succeeded', { bytes: 10 });
    await finishRun(bad.id, 'failed');

    const overview = await api.request('GET', '/api/v1/overview', { token: api.tokens.viewer });
    assert.equal(overview.status, 200, overview.text);
    const byName = Object.fromEntries(overview.json.items.map((item: { name: string }) => [item.name, item]));
    assert.deepEqual(Object.keys(byName), ['bad', 'fresh', 'good', 'late']);

    assert.equal(byName.good.health, 'ok');
    assert.equal(byName.good.lastRun.id, queued.id);
    assert.equal(byName.good.activeRun.id, queued.id);
    assert.equal(byName.good.newestBackup.id, backup.id);
    assert.equal(byName.good.newestBackup.bytes, 1200);
    assert.ok(byName.good.newestBackupAgeSeconds >= 0 && byName.good.newestBackupAgeSeconds < 600);
    assert.equal(byName.good.lastVerification.id, drill.id);
    assert.equal(byName.good.lastVerification.subjectRunId, backup.id);
    assert.equal(byName.good.nextScheduledAt, null);

    assert.equal(byName.bad.health, 'failing');
    assert.match(byName.bad.healthReason, /DUMP_FAILED/);
    assert.equal(byName.bad.lastRun.status, 'failed');
    assert.deepEqual(byName.bad.lastRun.error, { code: 'DUMP_FAILED', message: 'pg_dump exited with 1' });
    assert.equal(byName.bad.newestBackup.bytes, 210);

    assert.equal(byName.fresh.health, 'never');
    assert.equal(byName.fresh.lastRun, null);

    assert.equal(byName.late.health, 'stale');
    const next = Date.parse(byName.late.nextScheduledAt) - Date.parse(overview.json.now);
    assert.ok(next > 0 && next <= 60_000, `next slot in ${next} ms`);
  });

  it('history: finished backups oldest first with size and duration; limit; 404 and 400', async () => {
    const history = await api.request('GET', '/api/v1/targets/bad/history', { token: api.tokens.viewer });
    assert.equal(history.status, 200, history.text);
    assert.deepEqual(
      history.json.items.map((point: { status: string }) => point.status),
      ['succeeded', 'failed'],
    );
    const [ok, failed] = history.json.items;
    assert.equal(ok.bytes, 210);
    assert.equal(ok.dumpedBytes, 5000);
    // `null >= 0` is true: check the type first, or a missing duration passes.
    assert.equal(typeof ok.durationSeconds, 'number', `durationSeconds is ${ok.durationSeconds}`);
    assert.ok(ok.durationSeconds >= 0, `durationSeconds is ${ok.durationSeconds}`);
    assert.equal(failed.bytes, null);
    assert.equal(failed.errorCode, 'DUMP_FAILED');
    const one = await api.request('GET', '/api/v1/targets/bad/history?limit=1');
    assert.deepEqual(
      one.json.items.map((point: { status: string }) => point.status),
      ['failed'],
    );
    assert.equal((await api.request('GET', '/api/v1/targets/nope/history')).json.error.code, 'TARGET_NOT_FOUND');
    assert.equal((await api.request('GET', '/api/v1/targets/bad/history?limit=0')).status, 400);
  });

  const streams: AbortController[] = [];
  /** Opens the feed; it never ends by itself, so every one is aborted when the tests end. */
  const openFeed = (lastEventId?: number) => {
    const controller = new AbortController();
    streams.push(controller);
    return fetch(`${api.url}/api/v1/events`, {
      signal: controller.signal,
      headers: { accept: 'text/event-stream', authorization: `Bearer ${api.tokens.viewer}`, ...(lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) }) },
    });
  };
  const readFeed = (response: Response) => {
    const feed = readEventStream(response);
    feed.ended.catch(() => {});
    return feed;
  };

  it('feed: ready from now, every run’s events live with their target, resumable with Last-Event-ID; JSON too', async () => {
    assert.equal((await fetch(`${api.url}/api/v1/events`, { headers: { accept: 'text/event-stream' } })).status, 401);
    const response = await openFeed();
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const feed = readFeed(response);
    const ready = await waitFor('the ready event', () => feed.messages.find((message) => message.event === 'ready'));
    const startId = Number(ready.id);
    assert.equal(JSON.parse(ready.data).lastEventId, startId);

    const good = (await api.request('GET', '/api/v1/targets/good')).json;
    const run = await createRun(catalog.pool, { targetId: good.id, trigger: 'test', runDeadlineMs: 60_000 });
    await api.request('POST', `/api/v1/runs/${run.id}/cancel`, { token: api.tokens.operator });
    const live = await waitFor('both events on the feed', () => {
      const events = feed.messages.filter((message) => message.event === 'message').map((message) => ({ id: Number(message.id), ...JSON.parse(message.data) }));
      return events.some((event) => event.kind === 'cancel_requested') ? events : null;
    });
    // Only what happened after the stream opened, in id order.
    assert.deepEqual(
      live.map((event) => [event.runId, event.kind, event.status, event.targetName, event.runKind]),
      [
        [run.id, 'created', 'queued', 'good', 'backup'],
        [run.id, 'cancel_requested', 'cancelled', 'good', 'backup'],
      ],
    );
    assert.ok(live.every((event) => event.id > startId));

    const resumed = await openFeed(live[0].id);
    const replay = readFeed(resumed);
    await waitFor('the replayed event', () => replay.messages.some((message) => message.event === 'message'));
    assert.deepEqual(
      replay.messages.filter((message) => message.event === 'message').map((message) => Number(message.id)),
      [live[1].id],
    );

    const json = await api.request('GET', '/api/v1/events', { token: api.tokens.viewer, headers: { 'last-event-id': String(startId) } });
    assert.equal(json.status, 200, json.text);
    assert.deepEqual(
      json.json.items.map((event: { id: number }) => event.id),
      live.map((event) => event.id),
    );
    assert.equal(json.json.lastEventId, live[1].id);
    assert.equal((await api.request('GET', '/api/v1/events', { headers: { 'last-event-id': 'x' } })).status, 400);
  });

  it('feed: an event id committed after a later one is still delivered, in order', async () => {
    const response = await openFeed();
    const feed = readFeed(response);
    await waitFor('the ready event', () => feed.messages.some((message) => message.event === 'ready'));
    const good = (await api.request('GET', '/api/v1/targets/good')).json;
    const run = await createRun(catalog.pool, { targetId: good.id, trigger: 'test', runDeadlineMs: 60_000 });
    await waitFor('the created event', () => feed.messages.some((message) => message.event === 'message'));

    // A transaction takes the next event id and commits after a later id was committed.
    const slow = new pg.Client({ connectionString: catalog.url });
    await slow.connect();
    try {
      await slow.query('begin');
      await slow.query(`insert into backstop.run_events (run_id, attempt, kind, message) values ($1, 0, 'slow', 'committed second')`, [run.id]);
      await catalog.pool.query(`insert into backstop.run_events (run_id, attempt, kind, message) values ($1, 0, 'fast', 'committed first')`, [run.id]);
      await slow.query('commit');
    } finally {
      await slow.end();
    }
    const kinds = await waitFor('both events on the feed', () => {
      const seen = feed.messages.filter((message) => message.event === 'message').map((message) => JSON.parse(message.data).kind as string);
      return seen.includes('fast') && seen.includes('slow') ? seen : null;
    });
    assert.deepEqual(kinds, ['created', 'slow', 'fast']);
  });

  it('a run’s stream carries the runner’s progress as `progress` events', async () => {
    const good = (await api.request('GET', '/api/v1/targets/good')).json;
    await catalog.pool.query(`update backstop.runs set status = 'cancelled', finished_at = now() where target_id = $1 and status = 'queued'`, [good.id]);
    const run = await createRun(catalog.pool, { targetId: good.id, trigger: 'test', runDeadlineMs: 60_000 });
    const claimed = await claimRunById(catalog.pool, run.id, { leaseTtlMs: 60_000, claimedBy: 'test' });
    const response = await fetch(`${api.url}/api/v1/runs/${run.id}/events`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${api.tokens.viewer}` } });
    const stream = readEventStream(response);
    await waitFor('the claimed event', () => stream.messages.some((message) => message.event === 'message' && JSON.parse(message.data).kind === 'claimed'));
    await renewLease(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, leaseTtlMs: 60_000, progress: sampleProgress() });
    const progress = await waitFor('a progress event', () => stream.messages.find((message) => message.event === 'progress'));
    assert.equal(progress.id, undefined, 'progress events are not replayed, so they carry no id');
    assert.deepEqual(withoutTimestamp(JSON.parse(progress.data).progress), sampleProgress());
    await finalizeRun(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, outcome: 'failed', error: { code: 'DUMP_FAILED', message: 'x' } });
    await stream.ended;
    assert.equal(stream.messages.at(-1)!.event, 'end');
  });
});
