import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { assessAlarms, planAlarmActions, type ContinuousAlarmFacts, type TargetAlarmFacts } from '../src/core/alarms.ts';
import { messageText, notificationMessage } from '../src/core/notificationMessage.ts';
import { createDatabaseIfMissing } from '../src/db/createDatabaseIfMissing.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { getRun } from '../src/db/runRecords.ts';
import { createTarget, updateTarget, type NotificationChannel } from '../src/db/targets.ts';
import { listAlarms } from '../src/operations/listAlarms.ts';
import { killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { createSampleDatabase, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { backUpThroughApi, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * Alarms about what did not happen, end to end: real servers and workers evaluate them against
 * a real catalog and deliver them through the outbox to a real HTTP receiver on 127.0.0.1;
 * the worker's own catalog alarm is sent while a real PostgreSQL is stopped; the heartbeat
 * ping URL gets its start, success and failure pings. Bounds and intervals are seconds.
 */

// The receivers listen on loopback, which the outbound guard refuses unless allowed.
process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS = '127.0.0.1';

interface Received {
  method: string;
  url: string;
  body: string;
  json: Record<string, any> | null;
}

interface Receiver {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { url: '', received: [], close: async () => {} };
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      let json: Record<string, any> | null = null;
      try {
        json = JSON.parse(body);
      } catch {
        json = null;
      }
      receiver.received.push({ method: request.method ?? '', url: request.url ?? '', body, json });
      response.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}

const alarmChannel = (receiver: Receiver): NotificationChannel => ({ id: 'ops', kind: 'webhook', url: `${receiver.url}/hooks`, on: ['alarm'] });

/** The alarm messages a receiver got, of one kind. */
const alarmMessages = (receiver: Receiver, kind: string, event = 'alarm') =>
  receiver.received.filter((message) => message.json?.event === event && message.json?.alarm?.kind === kind).map((message) => message.json!);

/** Seconds-level alarms for tests; the evaluation runs five times a second. */
const fastAlarms = { BACKSTOP_ALARM_INTERVAL: '0.2', BACKSTOP_ALARM_SLOT_GRACE: '1', BACKSTOP_ALARM_GRACE: '1' };

describe('alarm decisions (pure)', () => {
  const facts = (over: Partial<TargetAlarmFacts> = {}): TargetAlarmFacts => ({
    targetId: 't',
    targetName: 'app',
    paused: false,
    createdAt: 0,
    schedule: null,
    scheduleSince: null,
    scheduleLastSlot: null,
    maxBackupAgeMs: null,
    drillSchedule: null,
    drillSince: null,
    missedSlots: 0,
    missedAfter: null,
    missedAt: null,
    newestGoodBackupAt: null,
    lastFinishedBackup: null,
    lastFinishedDrill: null,
    newestGoodDrillAt: null,
    continuous: null,
    ...over,
  });
  const settings = { graceMs: 60_000, slotGraceMs: 30_000 };
  const state = (input: TargetAlarmFacts, now: number, kind: string) => assessAlarms(input, now, settings).find((condition) => condition.kind === kind)!.state;

  describe('continuous targets', () => {
    const stream: ContinuousAlarmFacts = {
      state: 'streaming',
      stoppedReason: null,
      stoppedAt: null,
      retainedWalBytes: 10,
      measuredAt: 50_000,
      slotWarnBytes: 100,
      recoveryPoint: 40_000,
      maxRpoMs: 30_000,
    };
    const of = (continuous: ContinuousAlarmFacts | null) => facts({ continuous, createdAt: 0 });

    it('rpo_exceeded once the recovery point is older than the bound, for a streaming target only', () => {
      assert.equal(state(of(stream), 70_000, 'rpo_exceeded'), 'off');
      assert.equal(state(of(stream), 70_001, 'rpo_exceeded'), 'on');
      assert.equal(state(of({ ...stream, state: 'starting' }), 70_001, 'rpo_exceeded'), 'off');
      assert.equal(state(of(null), 70_001, 'rpo_exceeded'), 'off');
    });

    it('slot_wal_warning over the warning threshold; slot_dropped with the reason once stopped', () => {
      assert.equal(state(of(stream), 60_000, 'slot_wal_warning'), 'off');
      assert.equal(state(of({ ...stream, retainedWalBytes: 101 }), 60_000, 'slot_wal_warning'), 'on');
      const stopped = { ...stream, state: 'stopped' as const, stoppedReason: 'slot dropped: it held back 2 GiB', stoppedAt: 55_000, retainedWalBytes: 101 };
      const conditions = assessAlarms(of(stopped), 60_000, settings);
      const dropped = conditions.find((condition) => condition.kind === 'slot_dropped')!;
      assert.equal(dropped.state, 'on');
      assert.equal(dropped.since, 55_000);
      assert.match(dropped.details.what, /stopped: slot dropped: it held back 2 GiB/);
      assert.equal(conditions.find((condition) => condition.kind === 'slot_wal_warning')!.state, 'off');
      assert.equal(state(of(stream), 60_000, 'slot_dropped'), 'off');
    });

    it('their notifications name the target, the figure and its bound', () => {
      const message = (input: TargetAlarmFacts, now: number, kind: string) => {
        const condition = assessAlarms(input, now, settings).find((item) => item.kind === kind)!;
        assert.equal(condition.state, 'on', kind);
        const rendered = notificationMessage({ event: 'alarm', target: { name: 'app' }, alarm: { kind, ...condition.details, sentCount: 1 } });
        return `${rendered.title}\n${messageText(rendered)}`;
      };
      const rpo = message(of(stream), 100_000, 'rpo_exceeded');
      assert.match(rpo, /RPO exceeded: app/);
      assert.match(rpo, /app could lose 60 s of commits: nothing after 1970-01-01T00:00:40\.000Z is known stored, past its bound of 30 s/);
      const wal = message(of({ ...stream, retainedWalBytes: 3 * 1024 ** 3, slotWarnBytes: 1024 ** 3 }), 60_000, 'slot_wal_warning');
      assert.match(wal, /Slot WAL warning: app/);
      assert.match(wal, /The replication slot of app holds back 3\.0 GiB of WAL on the source, over its warning threshold of 1\.0 GiB/);
      const reason = 'slot dropped: it held back 9.0 GiB of WAL on the source, over the limit of 8.0 GiB';
      const dropped = message(of({ ...stream, state: 'stopped', stoppedReason: reason, stoppedAt: 55_000 }), 60_000, 'slot_dropped');
      assert.match(dropped, /Slot dropped: app/);
      assert.ok(dropped.includes(`Continuous backup of app stopped: ${reason}.`), dropped);
    });
  });
  const HOUR = 3_600_000;

  it('backup_overdue: an explicit bound, or the hourly schedule plus the grace; none without either; none while paused', () => {
    assert.equal(state(facts(), 10 * HOUR, 'backup_overdue'), 'off');
    assert.equal(state(facts({ maxBackupAgeMs: HOUR, newestGoodBackupAt: 0 }), HOUR - 1, 'backup_overdue'), 'off');
    assert.equal(state(facts({ maxBackupAgeMs: HOUR, newestGoodBackupAt: 0 }), HOUR + 1, 'backup_overdue'), 'on');
    const hourly = { cron: '0 * * * *', timezone: 'UTC' };
    assert.equal(state(facts({ schedule: hourly, scheduleSince: 0, newestGoodBackupAt: 0 }), HOUR + 59_000, 'backup_overdue'), 'off');
    assert.equal(state(facts({ schedule: hourly, scheduleSince: 0, newestGoodBackupAt: 0 }), HOUR + 61_000, 'backup_overdue'), 'on');
    assert.equal(state(facts({ schedule: hourly, paused: true, newestGoodBackupAt: 0 }), 10 * HOUR, 'backup_overdue'), 'off');
  });

  it('slot_missed: an unsettled slot past its grace, or slots the scheduler skipped, reported once even when already recovered', () => {
    const hourly = { cron: '0 * * * *', timezone: 'UTC' };
    assert.equal(state(facts({ schedule: hourly, scheduleSince: 0, scheduleLastSlot: HOUR }), HOUR + 10_000, 'slot_missed'), 'off');
    assert.equal(state(facts({ schedule: hourly, scheduleSince: 0, scheduleLastSlot: 0 }), HOUR + 10_000, 'slot_missed'), 'off', 'within the grace');
    assert.equal(state(facts({ schedule: hourly, scheduleSince: 0, scheduleLastSlot: 0 }), HOUR + 31_000, 'slot_missed'), 'on');
    const skipped = facts({ schedule: hourly, scheduleSince: 0, scheduleLastSlot: 3 * HOUR, missedSlots: 2, missedAfter: 0, missedAt: 3 * HOUR });
    assert.equal(state(skipped, 3 * HOUR + 1000, 'slot_missed'), 'on');
    assert.equal(state({ ...skipped, newestGoodBackupAt: 3 * HOUR + 500 }, 3 * HOUR + 1000, 'slot_missed'), 'once');
  });

  it('store_unwritable and drill_failing: from the newest finished runs; only a success clears the store', () => {
    const storeFailed = facts({ lastFinishedBackup: { status: 'failed', errorCode: 'STORE_WRITE_FAILED', finishedAt: 5 } });
    assert.equal(state(storeFailed, 10, 'store_unwritable'), 'on');
    assert.equal(state(facts({ lastFinishedBackup: { status: 'failed', errorCode: 'DATABASE_UNREACHABLE', finishedAt: 5 } }), 10, 'store_unwritable'), 'hold');
    assert.equal(state(facts({ lastFinishedBackup: { status: 'succeeded', errorCode: null, finishedAt: 5 } }), 10, 'store_unwritable'), 'off');
    assert.equal(state(facts({ lastFinishedDrill: { status: 'timed_out', errorCode: 'LEASE_EXPIRED', finishedAt: 5 } }), 10, 'drill_failing'), 'on');
    assert.equal(state(facts({ lastFinishedDrill: { status: 'succeeded', errorCode: null, finishedAt: 5 } }), 10, 'drill_failing'), 'off');
  });

  it('plan: raise once, repeat after the interval (never with 0), clear when it ends; once: raise, then clear', () => {
    const on = { kind: 'backup_overdue' as const, state: 'on' as const, since: 0, details: { what: 'w', whatToDo: 'd' } };
    assert.deepEqual(
      planAlarmActions([{ targetId: 't', condition: on }], [], 100, 1000).map((action) => action.type),
      ['raise'],
    );
    const active = [{ id: 1, targetId: 't', kind: 'backup_overdue' as const, since: 0, lastSentAt: 100, sentCount: 1 }];
    assert.deepEqual(planAlarmActions([{ targetId: 't', condition: on }], active, 1099, 1000), []);
    assert.deepEqual(
      planAlarmActions([{ targetId: 't', condition: on }], active, 1100, 1000).map((action) => action.type),
      ['repeat'],
    );
    assert.deepEqual(planAlarmActions([{ targetId: 't', condition: on }], active, 1_000_000, 0), []);
    assert.deepEqual(
      planAlarmActions([{ targetId: 't', condition: { ...on, state: 'off' } }], active, 200, 1000).map((action) => action.type),
      ['clear'],
    );
    const once = { ...on, state: 'once' as const };
    assert.deepEqual(
      planAlarmActions([{ targetId: 't', condition: once }], [], 200, 1000).map((action) => action.type),
      ['raise'],
    );
    assert.deepEqual(
      planAlarmActions([{ targetId: 't', condition: once }], active, 200, 1000).map((action) => action.type),
      ['clear'],
    );
  });
});

describe('alarms end to end', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let receivers: Receiver[] = [];
  let servers: TestServer[] = [];

  before(async () => {
    source = await createSampleDatabase(100);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-alarms-'));
  });
  after(async () => {
    await source?.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const server of servers) await server.close();
    servers = [];
    for (const receiver of receivers) await receiver.close();
    receivers = [];
    await catalog?.close();
  });

  const receiver = async () => {
    const started = await startReceiver();
    receivers.push(started);
    return started;
  };
  const server = async (env: Record<string, string>, worker = true) => {
    const started = await startTestServer({ catalogUrl: catalog.url, worker, env: { ...fastAlarms, ...env } });
    servers.push(started);
    return started;
  };

  it('no backup within the bound: the alarm arrives once, repeats once the interval passed, and a recovery follows a good backup', async () => {
    catalog = await createTestCatalog();
    const hooks = await receiver();
    await createTarget(catalog.pool, {
      name: 'overdue',
      databaseUrl: source.url,
      storeUrl: `file://${storeDir}`,
      maxBackupAge: 1,
      notifications: [alarmChannel(hooks)],
    });
    // Two servers evaluate the same catalog: neither may send what the other sent.
    const api = await server({ BACKSTOP_ALARM_REPEAT: '2' });
    await server({ BACKSTOP_ALARM_REPEAT: '2' }, false);

    const [first] = await waitFor('the alarm', () => alarmMessages(hooks, 'backup_overdue').length > 0 && alarmMessages(hooks, 'backup_overdue'), 20_000);
    assert.equal(first!.target.name, 'overdue');
    assert.equal(first!.alarm.sentCount, 1);
    assert.match(first!.alarm.what, /overdue has no good backup/);
    assert.match(first!.alarm.whatToDo, /backstop trigger overdue/);
    assert.ok(Date.parse(first!.alarm.since) > 0);
    const active = await listAlarms(catalog.pool, { target: 'overdue' });
    assert.deepEqual(
      active.map((alarm) => alarm.kind),
      ['backup_overdue'],
    );
    const shown = await api.request('GET', '/api/v1/targets/overdue');
    assert.deepEqual(
      shown.json.alarms.map((alarm: { kind: string }) => alarm.kind),
      ['backup_overdue'],
    );
    const overview = await api.request('GET', '/api/v1/overview');
    assert.deepEqual(
      overview.json.items.find((item: { name: string }) => item.name === 'overdue').alarms.map((alarm: { kind: string }) => alarm.kind),
      ['backup_overdue'],
    );

    const repeat = await waitFor('the repeat', () => alarmMessages(hooks, 'backup_overdue').find((message) => message.alarm.sentCount === 2), 20_000);
    assert.equal(repeat.alarm.id, first!.alarm.id);
    const [row] = await catalog.pool
      .query<{ gap: number }>('select extract(epoch from last_sent_at - raised_at)::float8 as gap from backstop.alarms where id = $1', [first!.alarm.id])
      .then((result) => result.rows);
    assert.ok(row!.gap >= 2, `repeated ${row!.gap} s after it was raised, before the 2 s interval`);

    await backUpThroughApi(api, 'overdue');
    const cleared = await waitFor('the recovery', () => alarmMessages(hooks, 'backup_overdue', 'alarm_cleared').find((message) => message.alarm.id === first!.alarm.id), 20_000);
    assert.ok(cleared.alarm.clearedAt);
    // Once each: every message of this alarm has its own count, 1, 2, … with no gap and no twin.
    const counts = alarmMessages(hooks, 'backup_overdue')
      .filter((message) => message.alarm.id === first!.alarm.id)
      .map((message) => message.alarm.sentCount as number)
      .sort((a, b) => a - b);
    assert.deepEqual(
      counts,
      counts.map((_, index) => index + 1),
    );
    assert.equal(alarmMessages(hooks, 'backup_overdue', 'alarm_cleared').filter((message) => message.alarm.id === first!.alarm.id).length, 1);
    // And each repeat waited the interval after the message before it (database clock).
    const sentAt = alarmMessages(hooks, 'backup_overdue')
      .filter((message) => message.alarm.id === first!.alarm.id)
      .sort((a, b) => a.alarm.sentCount - b.alarm.sentCount)
      .map((message) => Date.parse(message.alarm.lastSentAt));
    for (let index = 1; index < sentAt.length; index++)
      assert.ok(sentAt[index]! - sentAt[index - 1]! >= 2000, `repeat ${index + 1} came ${sentAt[index]! - sentAt[index - 1]!} ms after the one before`);
  });

  it('slots missed while every server and worker was down are alarmed when one returns, and recover after the catch-up backup', async () => {
    catalog = await createTestCatalog();
    const hooks = await receiver();
    const target = await createTarget(catalog.pool, {
      name: 'missed',
      databaseUrl: source.url,
      storeUrl: `file://${storeDir}`,
      schedule: { cron: '*/3 * * * * *', timezone: 'UTC' },
      notifications: [alarmChannel(hooks)],
    });
    // Nothing runs: wait (by the database clock) until two slots have passed unserved.
    await waitFor(
      'two schedule slots to pass',
      async () =>
        (await catalog.pool.query<{ passed: boolean }>(`select now() > schedule_since + interval '7 seconds' as passed from backstop.targets where id = $1`, [target.id])).rows[0]!
          .passed,
      30_000,
      200,
    );
    assert.equal((await catalog.pool.query('select 1 from backstop.notifications')).rowCount, 0, 'nothing was told while everything was down');

    await server({});
    const [alarm] = await waitFor('the slot_missed alarm', () => alarmMessages(hooks, 'slot_missed').length > 0 && alarmMessages(hooks, 'slot_missed'), 20_000);
    assert.equal(alarm!.target.name, 'missed');
    assert.match(alarm!.alarm.what, /produced no run/);
    const cleared = await waitFor('the recovery', () => alarmMessages(hooks, 'slot_missed', 'alarm_cleared').find((message) => message.alarm.id === alarm!.alarm.id), 30_000);
    assert.ok(cleared);
    const { rows } = await catalog.pool.query<{ status: string }>(`select status from backstop.runs where target_id = $1 and status = 'succeeded'`, [target.id]);
    assert.ok(rows.length > 0, 'a scheduled backup succeeded before the recovery');
  });

  it('the ping URL hears /start and success of a good backup, /start and /fail of a failed one, in order, with the run id', async () => {
    catalog = await createTestCatalog();
    const pings = await receiver();
    const pingUrl = `${pings.url}/ping/5bd2b0c4-0f1e-4a1d-9c55-1f6a2c8f3b11`;
    await createTarget(catalog.pool, { name: 'pinged', databaseUrl: source.url, storeUrl: `file://${storeDir}`, pingUrl });
    const api = await server({});
    const good = await backUpThroughApi(api, 'pinged');
    const path = new URL(pingUrl).pathname;
    await waitFor('two pings', () => pings.received.length >= 2, 20_000);
    assert.deepEqual(
      pings.received.map((ping) => `${ping.method} ${ping.url}`),
      [`POST ${path}/start?rid=${good}`, `POST ${path}?rid=${good}`],
    );
    assert.match(pings.received[1]!.body, /succeeded/);

    await updateTarget(catalog.pool, 'pinged', { databaseUrl: 'postgres://nobody:secret@127.0.0.1:1/nowhere' });
    const triggered = await api.request('POST', '/api/v1/runs', { body: { target: 'pinged' } });
    const failed = triggered.json.id as string;
    await waitFor('the failed backup', async () => (await getRun(catalog.pool, failed)).status === 'failed', 30_000);
    await waitFor('four pings', () => pings.received.length >= 4, 20_000);
    assert.deepEqual(
      pings.received.slice(2).map((ping) => `${ping.method} ${ping.url}`),
      [`POST ${path}/start?rid=${failed}`, `POST ${path}/fail?rid=${failed}`],
    );
    assert.match(pings.received[3]!.body, /failed \[DATABASE_UNREACHABLE\]/);
    assert.ok(!pings.received[3]!.body.includes('secret'));
    // The ping URL is a secret: shown as set, never as itself.
    const shown = await api.request('GET', '/api/v1/targets/pinged');
    assert.equal(shown.json.ping, true);
    assert.ok(!shown.text.includes(pingUrl));
    // And it goes through the outbound guard: a private address not allowed is refused up front.
    const refused = await api.request('PATCH', '/api/v1/targets/pinged', { body: { pingUrl: 'http://10.20.30.40/ping/x' } });
    assert.equal(refused.status >= 400 && refused.status < 500, true, refused.text);
    assert.equal(refused.json.error.field, 'pingUrl', refused.text);
    assert.match(refused.json.error.message, /BACKSTOP_ALLOW_PRIVATE_ENDPOINTS/);
  });
});

describe("a worker's own alarm when the catalog is out of reach", { timeout: 300_000 }, () => {
  let home: string;
  let processes: CliProcess[] = [];
  let hooks: Receiver | undefined;

  before(async () => {
    home = await temporaryHome('backstop-catalog-alarm-');
  });
  afterEach(async () => {
    await killAll(processes);
    processes = [];
    await hooks?.close();
  });
  after(async () => {
    await stopEmbeddedPostgres(home, { mode: 'immediate' }).catch(() => {});
    await fs.rm(home, { recursive: true, force: true });
  });

  it('the catalog stopped: the worker sends catalog_unreachable to the alarm channels it knew, then the recovery when it is back', async () => {
    // A PostgreSQL of its own: stopping the shared test server would take other test files down.
    const server = await ensureEmbeddedPostgres(home);
    await createDatabaseIfMissing(server.url(), 'backstop');
    const pool = createPool(server.url('backstop'));
    hooks = await startReceiver();
    try {
      await migrate(pool);
      await createTarget(pool, { name: 'watched', databaseUrl: 'postgres://nobody@127.0.0.1:1/none', storeUrl: 'file:///tmp/none', notifications: [alarmChannel(hooks)] });
    } finally {
      await pool.end();
    }
    const worker = startCli(['worker'], {
      BACKSTOP_DATABASE_URL: server.url('backstop'),
      BACKSTOP_CATALOG_ALARM_AFTER: '1',
      BACKSTOP_ALARM_INTERVAL: '0.2',
      BACKSTOP_ALARM_REPEAT: '0',
      BACKSTOP_ALLOW_PRIVATE_ENDPOINTS: '127.0.0.1',
    });
    processes.push(worker);
    await waitFor('the worker to know the alarm channel', () => worker.stderr().includes('alarm channels known'), 30_000);

    assert.equal(await stopEmbeddedPostgres(home, { mode: 'fast' }), true, 'the catalog server stopped');
    const [alarm] = await waitFor('catalog_unreachable', () => alarmMessages(hooks!, 'catalog_unreachable').length > 0 && alarmMessages(hooks!, 'catalog_unreachable'), 30_000);
    assert.match(alarm!.alarm.what, /cannot reach the catalog since/);
    assert.match(alarm!.worker, /:/);
    assert.ok(hooks.received.every((message) => message.url === '/hooks'));

    const restarted = await ensureEmbeddedPostgres(home);
    assert.equal(restarted.port, server.port);
    await waitFor('the recovery', () => alarmMessages(hooks!, 'catalog_unreachable', 'alarm_cleared').length > 0, 30_000);
    assert.equal(alarmMessages(hooks, 'catalog_unreachable').length, 1, 'sent once: BACKSTOP_ALARM_REPEAT=0');
  });
});

describe('backstop alarms', { timeout: 120_000 }, () => {
  it('lists the active alarms, and target show names them', async () => {
    const catalog = await createTestCatalog();
    try {
      const target = await createTarget(catalog.pool, { name: 'listed', databaseUrl: 'postgres://nobody@127.0.0.1:1/none', storeUrl: 'file:///tmp/none' });
      await catalog.pool.query(`insert into backstop.alarms (target_id, kind, since, details) values ($1, 'store_unwritable', now(), $2)`, [
        target.id,
        JSON.stringify({ what: 'The newest backup of listed could not write to its store.', whatToDo: 'Check the store.' }),
      ]);
      const env = { BACKSTOP_DATABASE_URL: catalog.url };
      const listed = await runCli(['alarms'], env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /listed\s+store_unwritable/);
      const json = await runCli(['alarms', '--json'], env);
      assert.deepEqual(
        JSON.parse(json.stdout).map((alarm: { targetName: string; kind: string }) => `${alarm.targetName} ${alarm.kind}`),
        ['listed store_unwritable'],
      );
      const shown = await runCli(['target', 'show', 'listed'], env);
      assert.match(shown.stdout, /ALARM store_unwritable since .*: The newest backup of listed could not write/);
    } finally {
      await catalog.close();
    }
  });
});
