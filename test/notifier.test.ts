import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { retryDelayMs, startNotifier, type Notifier, type NotifierOptions } from '../src/control/notifier.ts';
import { slackText } from '../src/core/channelRequests.ts';
import type { ChannelSettings } from '../src/core/channelSettings.ts';
import { listNotifications, type NotificationRecord } from '../src/db/notifications.ts';
import type { RunnerOutcome } from '../src/core/runState.ts';
import type { Artifact } from '../src/core/artifact.ts';
import { claimRunById, finalizeRun, reapRuns } from '../src/db/runLeases.ts';
import { createRun, getRun, requestCancel } from '../src/db/runRecords.ts';
import { createTarget, updateTargetPolicies, type NotificationEvent, type TargetRecord } from '../src/db/targets.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { finishRun } from './support/runRows.ts';
import { waitFor } from './support/wait.ts';

/**
 * Notifications end to end: a run's transition enqueues outbox rows in its own transaction
 * (trigger), notifiers deliver them to real HTTP receivers on 127.0.0.1 with retries, and
 * nothing a receiver does reaches back into the run.
 */

const log = pino({ level: 'silent' });
const HOUR = 3_600_000;
const DATABASE_PASSWORD = 'db-password-never-sent';
const SECRET = 'channel-secret-never-sent';

const artifact: Artifact = {
  storeUrl: 'file:///var/backups',
  prefix: 'app/2025/01/run/attempt-1/',
  manifest: { name: 'manifest.json', size: 10, sha256: 'a'.repeat(64) },
  files: [{ name: 'dump.pgcustom.zst', size: 2048, sha256: 'b'.repeat(64) }],
};

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  json: Record<string, any>;
}

interface Receiver {
  url: string;
  received: Received[];
  /** Requests that arrived, answered or not. */
  arrived: number;
  close(): Promise<void>;
}

/** A real HTTP server; `respond` decides each answer (undefined: never answer). */
async function startReceiver(respond: (index: number) => number | undefined = () => 200): Promise<Receiver> {
  const receiver: Receiver = { url: '', received: [], arrived: 0, close: async () => {} };
  const server = http.createServer((request, response) => {
    const index = receiver.arrived++;
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const status = respond(index);
      if (status === undefined) return; // hang: headers never sent
      receiver.received.push({ headers: request.headers, body, json: JSON.parse(body) });
      response.writeHead(status, { 'content-type': 'text/plain' }).end(status >= 400 ? 'receiver says no' : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/backstop`;
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}

describe('notifications', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let target: TargetRecord;
  let notifiers: Notifier[] = [];
  let receivers: Receiver[] = [];
  let channelCounter = 0;

  beforeEach(async () => {
    catalog = await createTestCatalog();
    target = await createTarget(catalog.pool, {
      name: 'app',
      databaseUrl: `postgres://backstop:${DATABASE_PASSWORD}@127.0.0.1:5432/app`,
      storeUrl: 'file:///var/backups',
    });
  });

  afterEach(async () => {
    await Promise.all(notifiers.map((notifier) => notifier.stop()));
    notifiers = [];
    await Promise.all(receivers.map((receiver) => receiver.close()));
    receivers = [];
    await catalog.close();
  });

  const receiver = async (respond?: (index: number) => number | undefined) => {
    const started = await startReceiver(respond);
    receivers.push(started);
    return started;
  };

  const addChannel = async (channel: ChannelSettings & { on: NotificationEvent[] }): Promise<string> => {
    const id = `channel-${++channelCounter}`;
    await updateTargetPolicies(catalog.pool, target.name, { addChannels: [{ id, ...channel }] });
    return id;
  };

  const notifier = (options: NotifierOptions = {}) => {
    const started = startNotifier({ db: catalog.pool, log }, { pollIntervalMs: 50, retryBaseMs: 100, ...options });
    notifiers.push(started);
    return started;
  };

  /** A run through the real claim and finalize path; returns how long the finalize took. */
  const finish = (outcome: RunnerOutcome, error: { code: string; message: string } | null = null) =>
    finishRun(catalog.pool, target.id, outcome, { error, artifact: outcome === 'succeeded' ? artifact : null });

  const outbox = async (): Promise<NotificationRecord[]> => listNotifications(catalog.pool, { targetId: target.id });

  it('a webhook gets signed JSON the receiver can verify, without secrets', async () => {
    const hook = await receiver();
    await addChannel({ kind: 'webhook', url: hook.url, secret: SECRET, on: ['failed'] });
    const { run } = await finish('failed', { code: 'DUMP_FAILED', message: 'pg_dump exited with code 1: permission denied for table orders' });
    notifier();
    await waitFor('webhook delivered', () => hook.received.length === 1);
    const [request] = hook.received;

    // What a receiver does: recompute the HMAC over "<timestamp>.<raw body>" and compare in constant time.
    const timestamp = String(request!.headers['x-backstop-timestamp']);
    assert.ok(Math.abs(Number(timestamp) - Date.now() / 1000) < 60, 'the timestamp is current');
    const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${request!.body}`).digest('hex')}`);
    const signature = Buffer.from(String(request!.headers['x-backstop-signature']));
    assert.ok(signature.length === expected.length && timingSafeEqual(signature, expected), 'signature verifies');
    const forged = Buffer.from(
      `sha256=${createHmac('sha256', SECRET)
        .update(`${timestamp}.${request!.body.replace('failed', 'succeeded')}`)
        .digest('hex')}`,
    );
    assert.ok(!timingSafeEqual(signature, forged), 'a changed body does not verify');

    assert.equal(request!.headers['content-type'], 'application/json');
    assert.equal(request!.headers['x-backstop-event'], 'failed');
    const body = request!.json;
    assert.equal(body.event, 'failed');
    assert.equal(body.deliveryId, Number(request!.headers['x-backstop-delivery']));
    assert.deepEqual(body.target, { id: target.id, name: 'app' });
    assert.equal(body.run.id, run.id);
    assert.equal(body.run.status, 'failed');
    assert.deepEqual(body.run.error, { code: 'DUMP_FAILED', message: 'pg_dump exited with code 1: permission denied for table orders' });
    assert.equal(body.run.artifact, null);
    assert.match(body.run.finishedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    for (const secret of [SECRET, DATABASE_PASSWORD, 'postgres://', '/hooks/backstop']) assert.ok(!request!.body.includes(secret), `payload holds ${secret}`);

    const row = await waitFor('delivery recorded', async () => (await outbox()).find((entry) => entry.deliveredAt));
    assert.equal(row.attempts, 1);
    assert.ok(!JSON.stringify(row).includes(SECRET));
  });

  it('a receiver that answers 500 and then 200 gets the notification on the retry', async () => {
    const flaky = await receiver((index) => (index === 0 ? 500 : 200));
    await addChannel({ kind: 'webhook', url: flaky.url, secret: SECRET, on: ['failed', 'timed_out'] });
    await finish('failed', { code: 'DUMP_FAILED', message: 'boom' });
    notifier();
    await waitFor('delivered after a retry', async () => (await outbox())[0]?.deliveredAt);
    const [row] = await outbox();
    assert.equal(row!.attempts, 2);
    assert.equal(flaky.received.length, 2);
    assert.equal(flaky.received[0]!.headers['x-backstop-delivery'], flaky.received[1]!.headers['x-backstop-delivery'], 'the same delivery id on retries');
  });

  it('a receiver that hangs neither delays the run nor the other channels; its attempt times out and is retried later', async () => {
    const hanging = await receiver(() => undefined);
    const healthy = await receiver();
    await addChannel({ kind: 'webhook', url: hanging.url, secret: SECRET, on: ['failed'] });
    await addChannel({ kind: 'slack', url: healthy.url, on: ['failed'] });
    notifier({ requestTimeoutMs: 400, retryBaseMs: 60_000 });
    // Let the notifier be mid-poll while the run ends: nothing waits on it.
    const { run, finalizeMs } = await finish('failed', { code: 'DUMP_FAILED', message: 'boom' });
    assert.equal(run.status, 'failed');
    assert.ok(finalizeMs < 1000, `finalize took ${Math.round(finalizeMs)} ms`);
    assert.equal((await getRun(catalog.pool, run.id)).status, 'failed');

    await waitFor('the healthy channel got its notification', () => healthy.received.length === 1, 5000);
    await waitFor('the hanging attempt timed out', async () => (await outbox()).find((row) => row.lastError !== null));
    const rows = await outbox();
    const stuck = rows.find((row) => row.lastError !== null)!;
    assert.equal(stuck.lastError, 'no answer within 400 ms');
    assert.equal(stuck.deliveredAt, null);
    assert.equal(stuck.failedAt, null);
    assert.ok(Date.parse(stuck.nextAttemptAt) > Date.now() + 30_000, 'retried after the backoff');
    assert.ok(rows.find((row) => row.id !== stuck.id)!.deliveredAt);
    assert.equal(hanging.arrived, 1);
  });

  it('recovery: a success after a failure or a timeout says so; cancellations notify only channels that ask', async () => {
    const hook = await receiver();
    await addChannel({ kind: 'webhook', url: hook.url, secret: SECRET, on: ['failed', 'timed_out', 'recovered'] });
    const everything = await receiver();
    await addChannel({ kind: 'webhook', url: everything.url, on: ['succeeded', 'cancelled'] });

    await finish('succeeded'); // nothing to recover from
    await finish('failed', { code: 'DUMP_FAILED', message: 'boom' });
    const cancelled = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: HOUR });
    await requestCancel(catalog.pool, cancelled.id); // does not count as an outcome for recovery
    const { run: recovered } = await finish('succeeded');
    await finish('succeeded'); // healthy again: no second recovery

    // A runner that vanished: its lease expires and the reaper ends the run.
    const lost = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: HOUR });
    await claimRunById(catalog.pool, lost.id, { leaseTtlMs: 150, claimedBy: 'vanished' });
    await waitFor('the reaper ends the lost run', async () => (await reapRuns(catalog.pool)).length > 0 || (await getRun(catalog.pool, lost.id)).status === 'timed_out');
    const { run: recoveredFromTimeout } = await finish('succeeded');

    notifier();
    await waitFor('all delivered', async () => {
      const rows = await outbox();
      return rows.length === 9 && rows.every((row) => row.deliveredAt);
    });
    // Deliveries of one pass run concurrently: put them back in the order they were enqueued.
    for (const list of [hook.received, everything.received]) list.sort((a, b) => a.json.deliveryId - b.json.deliveryId);
    assert.deepEqual(
      hook.received.map((request) => request.json.event),
      ['failed', 'recovered', 'timed_out', 'recovered'],
    );
    const recovery = hook.received[1]!.json;
    assert.equal(recovery.run.id, recovered.id);
    assert.equal(recovery.previousStatus, 'failed');
    assert.deepEqual(recovery.run.artifact, { storeUrl: 'file:///var/backups', prefix: artifact.prefix, files: 1, bytes: 2048 });
    assert.equal(hook.received[2]!.json.run.error.code, 'LEASE_EXPIRED');
    assert.equal(hook.received[3]!.json.run.id, recoveredFromTimeout.id);
    assert.equal(hook.received[3]!.json.previousStatus, 'timed_out');
    assert.deepEqual(
      everything.received.map((request) => request.json.event),
      ['succeeded', 'cancelled', 'succeeded', 'succeeded', 'succeeded'],
    );
    assert.equal(everything.received[0]!.headers['x-backstop-signature'], undefined, 'a channel without a secret is not signed');
  });

  it('a failed restore drill is verify_failed, never a backup failure, and does not count for recovery', async () => {
    const hook = await receiver();
    await addChannel({ kind: 'webhook', url: hook.url, on: ['failed', 'verify_failed', 'recovered', 'succeeded'] });
    const { run: backup } = await finish('succeeded');
    const drill = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: HOUR, kind: 'verify', subjectRunId: backup.id });
    const claimed = await claimRunById(catalog.pool, drill.id, { leaseTtlMs: 60_000, claimedBy: 'drill' });
    await finalizeRun(catalog.pool, {
      runId: drill.id,
      leaseId: claimed.leaseId,
      outcome: 'failed',
      error: { code: 'VERIFY_MISMATCH', message: 'public.orders: 10 rows restored, 12 in the manifest' },
    });
    await finish('succeeded');
    notifier();
    await waitFor('three delivered', async () => {
      const rows = await outbox();
      return rows.length === 3 && rows.every((row) => row.deliveredAt);
    });
    hook.received.sort((a, b) => a.json.deliveryId - b.json.deliveryId);
    assert.deepEqual(
      hook.received.map((request) => request.json.event),
      ['succeeded', 'verify_failed', 'succeeded'],
    );
    const failed = hook.received[1]!.json;
    assert.equal(failed.run.id, drill.id);
    assert.equal(failed.run.kind, 'verify');
    assert.equal(failed.run.subjectRunId, backup.id);
    assert.equal(failed.run.error.code, 'VERIFY_MISMATCH');
    assert.equal(
      slackText(failed),
      `:warning: Restore drill of *app* backup ${backup.id} failed: [VERIFY_MISMATCH] public.orders: 10 rows restored, 12 in the manifest (drill ${drill.id})`,
    );
  });

  it('Slack gets {text} only, escaped, with the target, outcome and error', async () => {
    const slack = await receiver();
    await addChannel({ kind: 'slack', url: slack.url, on: ['failed', 'succeeded'] });
    const { run } = await finish('failed', { code: 'DATABASE_UNREACHABLE', message: 'Cannot connect to <db> & retry' });
    await finish('succeeded');
    notifier();
    await waitFor('two Slack messages', () => slack.received.length === 2);
    const failed = slack.received.find((request) => request.json.text.startsWith(':x:'));
    const succeeded = slack.received.find((request) => request.json.text.startsWith(':white_check_mark:'));
    assert.deepEqual(Object.keys(failed!.json), ['text']);
    const [headline, ...rest] = failed!.json.text.split('\n');
    assert.equal(headline, `:x: Backup of *app* failed: [DATABASE_UNREACHABLE] Cannot connect to &lt;db&gt; &amp; retry (run ${run.id})`);
    // Then since when, and what to do (no link: this notifier has no public URL).
    assert.match(rest[0]!, /^Failing since \d{4}-\d\d-\d\dT/);
    assert.match(rest[1]!, /^What to do: Read the error on the run page/);
    assert.equal(rest.length, 2);
    assert.match(succeeded!.json.text, /^:white_check_mark: Backup of \*app\* succeeded: 2\.0 KiB in 1 file\(s\) \(run [0-9a-f-]{36}\)$/);
    assert.equal(failed!.headers['x-backstop-signature'], undefined);
    assert.equal(
      slackText({ event: 'recovered', target: { name: 'app' }, previousStatus: 'timed_out', run: { id: 'r', artifact: { files: 1, bytes: 10 } } }),
      ':white_check_mark: Backup of *app* recovered: succeeded after a timed_out run: 10 B in 1 file(s) (run r)',
    );
  });

  it('gives up after the last attempt, with the last error recorded', async () => {
    const broken = await receiver(() => 503);
    await addChannel({ kind: 'webhook', url: broken.url, secret: SECRET, on: ['failed'] });
    await finish('failed', { code: 'DUMP_FAILED', message: 'boom' });
    notifier({ maxAttempts: 3, retryBaseMs: 50 });
    await waitFor('given up', async () => (await outbox())[0]?.failedAt);
    const [row] = await outbox();
    assert.equal(row!.attempts, 3);
    assert.equal(row!.lastError, 'HTTP 503: receiver says no');
    assert.equal(row!.deliveredAt, null);
    assert.equal(broken.arrived, 3);
    assert.deepEqual(
      [1, 2, 3, 10, 30].map((attempts) => retryDelayMs(attempts, 5000, 3_600_000)),
      [5000, 10_000, 20_000, 2_560_000, 3_600_000],
    );
  });

  it('many notifiers deliver each notification exactly once', async () => {
    const hook = await receiver();
    await addChannel({ kind: 'webhook', url: hook.url, secret: SECRET, on: ['failed', 'succeeded'] });
    for (let i = 0; i < 12; i++) await finish(i % 2 === 0 ? 'failed' : 'succeeded', i % 2 === 0 ? { code: 'DUMP_FAILED', message: `boom ${i}` } : null);
    for (let i = 0; i < 4; i++) notifier({ batchSize: 2, pollIntervalMs: 10 });
    await waitFor('all delivered', async () => (await outbox()).every((row) => row.deliveredAt));
    const ids = hook.received.map((request) => request.headers['x-backstop-delivery']);
    assert.equal(ids.length, 12);
    assert.equal(new Set(ids).size, 12);
  });

  it('a channel list the trigger cannot use never stops a run from ending', async () => {
    await catalog.pool.query(`update backstop.targets set notifications = '{"not": "a list"}' where id = $1`, [target.id]);
    const { run } = await finish('failed', { code: 'DUMP_FAILED', message: 'boom' });
    assert.equal(run.status, 'failed');
    const hook = await receiver();
    await catalog.pool.query(`update backstop.targets set notifications = $2::jsonb where id = $1`, [
      target.id,
      JSON.stringify([{ id: 'c', kind: 'webhook', url: hook.url, on: ['succeeded'] }]),
    ]);
    // An artifact whose file list is not a list makes the payload itself fail to build.
    const created = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: HOUR });
    const claimed = await claimRunById(catalog.pool, created.id, { leaseTtlMs: 60_000, claimedBy: 'test' });
    const odd = await finalizeRun(catalog.pool, { runId: created.id, leaseId: claimed.leaseId, outcome: 'succeeded', artifact: { ...artifact, files: 'odd' as never } });
    assert.equal(odd.status, 'succeeded');
    assert.deepEqual(await outbox(), []);
  });
});
