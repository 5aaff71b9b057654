import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import pino from 'pino';
import { startScheduler, type ScheduledSlot, type Scheduler, type VerificationSlot } from '../src/control/scheduler.ts';
import type { AuditActor } from '../src/core/auditActor.ts';
import { isBackstopError } from '../src/core/errors.ts';
import { parseSchedule, planScheduleSlot } from '../src/core/scheduleSlots.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { requestCancel } from '../src/db/runRecords.ts';
import { createTarget, type TargetRecord } from '../src/db/targets.ts';
import { pauseTarget, resumeTarget } from '../src/operations/targets/pauseTarget.ts';
import { runCli } from './support/cli.ts';
import { openConnections, type Connections } from './support/connections.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

const testActor: AuditActor = { kind: 'cli', name: 'scheduler test', address: null, client: 'cli' };

const MINUTE = 60_000;
const log = pino({ level: 'silent' });
const config = { runDeadlineMs: 3_600_000 };
const at = (iso: string) => Date.parse(iso);

describe('schedule slots (pure)', () => {
  it('the slot due is the latest one up to now; none once it is settled', () => {
    const now = at('2024-05-10T12:34:56Z');
    const first = planScheduleSlot({ cron: '0 3 * * *', timezone: 'Europe/Paris', after: at('2024-05-09T12:00:00Z'), now });
    assert.equal(first.slot, at('2024-05-10T01:00:00Z')); // 03:00 CEST
    assert.equal(first.skipped, 0);
    assert.equal(first.nextAt, at('2024-05-11T01:00:00Z'));
    const settled = planScheduleSlot({ cron: '0 3 * * *', timezone: 'Europe/Paris', after: first.slot, now });
    assert.equal(settled.slot, null);
    assert.equal(settled.nextAt, at('2024-05-11T01:00:00Z'));
  });

  it('a slot exactly at now is due', () => {
    const now = at('2024-05-10T03:00:00Z');
    assert.equal(planScheduleSlot({ cron: '0 3 * * *', timezone: 'UTC', after: now - MINUTE, now }).slot, now);
  });

  it('after downtime only the latest missed slot is due, with the skipped ones counted', () => {
    const decision = planScheduleSlot({ cron: '*/5 * * * *', timezone: 'UTC', after: at('2024-05-10T10:00:00Z'), now: at('2024-05-10T10:52:00Z') });
    assert.equal(decision.slot, at('2024-05-10T10:50:00Z'));
    assert.equal(decision.skipped, 9); // 10:05 … 10:45
    assert.equal(decision.nextAt, at('2024-05-10T10:55:00Z'));
  });

  it('follows the time zone across a daylight-saving gap', () => {
    // 02:30 does not exist in Paris on 2024-03-31: the slot is the first valid time after the gap.
    const decision = planScheduleSlot({ cron: '30 2 * * *', timezone: 'Europe/Paris', after: at('2024-03-30T12:00:00Z'), now: at('2024-03-31T06:00:00Z') });
    assert.equal(decision.slot, at('2024-03-31T01:00:00Z'));
    const newYork = planScheduleSlot({ cron: '0 9 * * 1-5', timezone: 'America/New_York', after: null, now: at('2024-07-06T12:00:00Z') });
    assert.equal(newYork.slot, at('2024-07-05T13:00:00Z')); // Friday 09:00 EDT
  });

  it('seconds are allowed as a sixth field', () => {
    const decision = planScheduleSlot({ cron: '*/10 * * * * *', timezone: 'UTC', after: at('2024-01-01T00:00:00Z'), now: at('2024-01-01T00:00:25.500Z') });
    assert.equal(decision.slot, at('2024-01-01T00:00:20Z'));
    assert.equal(decision.skipped, 1);
  });

  it('refuses invalid cron expressions and time zones with a clear error', () => {
    const cases: [cron: string, timezone: string, expected: RegExp][] = [
      ['61 * * * *', 'UTC', /Invalid schedule: "61 \* \* \* \*" is not a valid cron expression/],
      ['every day', 'UTC', /is not a cron expression: use 5 fields/],
      ['2030-01-01T00:00:00', 'UTC', /is not a cron expression/],
      ['0 3 30 2 *', 'UTC', /never fires/],
      ['0 3 * * *', 'Mars/Olympus_Mons', /"Mars\/Olympus_Mons" is not a time zone/],
    ];
    for (const [cron, timezone, expected] of cases) {
      assert.throws(
        () => parseSchedule(cron, timezone),
        (error: unknown) => isBackstopError(error, 'INVALID_INPUT') && expected.test(error.message),
        `${cron} / ${timezone}`,
      );
    }
    // Both problems reported at once.
    assert.throws(() => parseSchedule('nope', 'Nowhere/Town'), /not a cron expression.*not a time zone/);
  });
});

describe('scheduler against a real catalog', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let connections: Connections;
  let schedulers: Scheduler[] = [];
  let counter = 0;

  before(async () => {
    catalog = await createTestCatalog();
    connections = await openConnections(catalog.url, 6);
  });

  afterEach(async () => {
    await Promise.all(schedulers.map((scheduler) => scheduler.stop()));
    schedulers = [];
    // Leave no queued run behind for the next test's targets (each test has its own target anyway).
    await catalog.pool.query(`update backstop.targets set schedule = null, verification = null`);
  });

  after(async () => {
    await connections.close();
    await catalog.close();
  });

  const scheduler = (db = catalog.pool as Parameters<typeof startScheduler>[0]['db'], options: Parameters<typeof startScheduler>[1] = {}) => {
    const started = startScheduler({ db, config, log }, { timer: false, ...options });
    schedulers.push(started);
    return started;
  };

  const scheduledTarget = async (cron: string, timezone = 'UTC'): Promise<TargetRecord> =>
    createTarget(catalog.pool, {
      name: `sched-${++counter}`,
      databaseUrl: 'postgres://u:p@127.0.0.1:1/nothing',
      storeUrl: 'file:///tmp/backstop-scheduler-test',
      schedule: { cron, timezone },
    });

  /** The first whole minute after the schedule was set, plus `minutes`. */
  const minuteAfterSince = async (target: TargetRecord, minutes = 1) => {
    const { rows } = await catalog.pool.query<{ since: string }>('select schedule_since as since from backstop.targets where id = $1', [target.id]);
    return Math.ceil(Date.parse(rows[0]!.since) / MINUTE) * MINUTE + minutes * MINUTE;
  };

  const runsOf = async (target: TargetRecord) =>
    (
      await catalog.pool.query<{ id: string; status: string; slot: string; trigger: string }>(
        `select id, status, schedule_slot as slot, trigger from backstop.runs where target_id = $1 order by schedule_slot`,
        [target.id],
      )
    ).rows;

  it('six schedulers on separate connections ticking the same slots create exactly one run per slot', async () => {
    const target = await scheduledTarget('* * * * *');
    const racers = connections.clients.map((client) => scheduler(client));
    const first = await minuteAfterSince(target);
    for (let slot = 0; slot < 5; slot++) {
      const now = first + slot * MINUTE + 1500;
      const results = await Promise.all(racers.map((racer) => racer.tickOnce(now)));
      const created = results.flatMap((result) => result.scheduled.filter((s) => s.targetId === target.id && s.outcome.kind === 'created'));
      assert.equal(created.length, 1, `slot ${slot}: ${created.length} schedulers created a run`);
      const runId = (created[0]!.outcome as { runId: string }).runId;
      await requestCancel(catalog.pool, runId); // ends it, so the next slot is not "waiting"
    }
    const runs = await runsOf(target);
    assert.equal(runs.length, 5);
    assert.deepEqual(
      runs.map((run) => Date.parse(run.slot)),
      [0, 1, 2, 3, 4].map((slot) => first + slot * MINUTE),
    );
    assert.ok(runs.every((run) => run.trigger === 'schedule'));
  });

  it('two schedulers with real timers on an every-second schedule: one run per slot, slots on whole seconds', async () => {
    const target = await scheduledTarget('* * * * * *');
    const created: ScheduledSlot[] = [];
    const onScheduled = (slot: ScheduledSlot) => {
      if (slot.targetId !== target.id || slot.outcome.kind !== 'created') return;
      created.push(slot);
      void requestCancel(catalog.pool, slot.outcome.runId).catch(() => {});
    };
    scheduler(catalog.pool, { timer: true, onScheduled });
    scheduler(connections.clients[0]!, { timer: true, onScheduled });
    await waitFor('four scheduled runs', () => created.length >= 4, 15_000);
    await Promise.all(schedulers.map((s) => s.stop()));
    schedulers = [];
    const runs = await runsOf(target);
    assert.equal(runs.length, created.length, 'every run was reported created by exactly one scheduler');
    assert.equal(new Set(runs.map((run) => run.slot)).size, runs.length);
    for (const run of runs) assert.equal(Date.parse(run.slot) % 1000, 0);
  });

  it('after downtime of several slots: one catch-up run for the latest, none for the others', async () => {
    const target = await scheduledTarget('*/5 * * * *');
    const s = scheduler();
    const since = await minuteAfterSince(target, 0);
    const firstSlot = Math.ceil(since / (5 * MINUTE)) * 5 * MINUTE;
    const first = await s.tickOnce(firstSlot + 1000);
    const run = first.scheduled.find((slot) => slot.targetId === target.id)!;
    assert.equal(run.outcome.kind, 'created');
    await requestCancel(catalog.pool, (run.outcome as { runId: string }).runId);

    // Down for 47 minutes: nine slots passed.
    const later = firstSlot + 47 * MINUTE;
    const catchUp = (await s.tickOnce(later)).scheduled.filter((slot) => slot.targetId === target.id);
    assert.equal(catchUp.length, 1);
    assert.equal(catchUp[0]!.outcome.kind, 'created');
    assert.equal(Date.parse(catchUp[0]!.slot), firstSlot + 45 * MINUTE);
    assert.equal(catchUp[0]!.skipped, 8);
    assert.equal((await s.tickOnce(later + 1000)).scheduled.filter((slot) => slot.targetId === target.id).length, 0);
    assert.equal((await runsOf(target)).length, 2);
    const events = await listRunEvents(catalog.pool, (catchUp[0]!.outcome as { runId: string }).runId);
    assert.match(events[0]!.message ?? '', /catch-up; 8 earlier missed slot\(s\) skipped/);
  });

  it('a slot whose run was deleted (retention) is not created again', async () => {
    const target = await scheduledTarget('* * * * *');
    const s = scheduler();
    const now = (await minuteAfterSince(target)) + 1000;
    const first = (await s.tickOnce(now)).scheduled.find((slot) => slot.targetId === target.id)!;
    assert.equal(first.outcome.kind, 'created');
    await catalog.pool.query('delete from backstop.runs where target_id = $1', [target.id]);
    assert.equal((await s.tickOnce(now)).scheduled.filter((slot) => slot.targetId === target.id).length, 0);
    assert.equal((await runsOf(target)).length, 0);
  });

  it('while a scheduled run still waits in the queue, later slots are settled without piling up runs', async () => {
    const target = await scheduledTarget('* * * * *');
    const s = scheduler();
    const first = await minuteAfterSince(target);
    const created = (await s.tickOnce(first + 1000)).scheduled.find((slot) => slot.targetId === target.id)!;
    assert.equal(created.outcome.kind, 'created');
    const waitingRunId = (created.outcome as { runId: string }).runId;
    for (let minute = 1; minute <= 3; minute++) {
      const tick = (await s.tickOnce(first + minute * MINUTE + 1000)).scheduled.find((slot) => slot.targetId === target.id)!;
      assert.deepEqual(tick.outcome, { kind: 'waiting', waitingRunId });
    }
    assert.equal((await runsOf(target)).length, 1);
    await requestCancel(catalog.pool, waitingRunId);
    // The slots that passed while it waited stay settled; the next one gets a run.
    assert.equal((await s.tickOnce(first + 3 * MINUTE + 2000)).scheduled.filter((slot) => slot.targetId === target.id).length, 0);
    const next = (await s.tickOnce(first + 4 * MINUTE + 1000)).scheduled.find((slot) => slot.targetId === target.id)!;
    assert.equal(next.outcome.kind, 'created');
  });

  it('setting a schedule does not create a run for a slot that passed before it was set; the database clock decides', async () => {
    const target = await scheduledTarget('0 0 1 1 *'); // midnight, 1 January: long past
    const s = scheduler();
    const result = await s.tickOnce();
    assert.equal(result.scheduled.filter((slot) => slot.targetId === target.id).length, 0);
    const { rows } = await catalog.pool.query<{ now: string }>('select now() as now');
    assert.ok(Math.abs(result.now - Date.parse(rows[0]!.now)) < 5000, 'tick decided with the database clock');
    assert.ok(result.nextAt !== null && result.nextAt > result.now);
  });

  it('a target with an invalid stored schedule is reported; the others are still scheduled', async () => {
    const broken = await scheduledTarget('* * * * *');
    await catalog.pool.query(`update backstop.targets set schedule = '{"cron": "banana", "timezone": "UTC"}' where id = $1`, [broken.id]);
    const healthy = await scheduledTarget('* * * * *');
    const s = scheduler();
    const result = await s.tickOnce((await minuteAfterSince(healthy)) + 1000);
    assert.ok(result.errors.some((error) => error.targetName === broken.name && error.error.code === 'INVALID_INPUT'));
    assert.equal(result.scheduled.find((slot) => slot.targetId === healthy.id)?.outcome.kind, 'created');
  });

  /** A succeeded backup run of the target, finished now (database time). */
  const succeededBackup = async (target: TargetRecord): Promise<string> => {
    const artifact = { storeUrl: 'file:///tmp/x', prefix: 'p/', manifest: { name: 'manifest.json', size: 1, sha256: 'a'.repeat(64) }, files: [] };
    const { rows } = await catalog.pool.query<{ id: string }>(
      `insert into backstop.runs (target_id, status, deadline_at, started_at, finished_at, artifact)
       values ($1, 'succeeded', now() + interval '1 hour', now(), now(), $2) returning id`,
      [target.id, JSON.stringify(artifact)],
    );
    return rows[0]!.id;
  };

  const drillsOf = async (target: TargetRecord) =>
    (
      await catalog.pool.query<{ id: string; subject: string; trigger: string; status: string }>(
        `select id, subject_run_id as subject, trigger, status from backstop.runs where target_id = $1 and kind = 'verify' order by created_at`,
        [target.id],
      )
    ).rows;

  it('verification drills on a cron: one drill of the newest backup per slot across schedulers', async () => {
    const target = await scheduledTarget('0 0 1 1 *');
    await catalog.pool.query(`update backstop.targets set verification = '{"cron": "*/15 * * * *"}' where id = $1`, [target.id]);
    await succeededBackup(target);
    const newest = await succeededBackup(target);
    const due: VerificationSlot[] = [];
    const onVerificationDue = (drill: VerificationSlot) => {
      if (drill.targetId === target.id) due.push(drill);
    };
    const racers = connections.clients.slice(0, 4).map((client) => scheduler(client, { onVerificationDue }));
    const { rows } = await catalog.pool.query<{ since: string }>('select verification_since as since from backstop.targets where id = $1', [target.id]);
    const slot = Math.ceil(Date.parse(rows[0]!.since) / (15 * MINUTE)) * 15 * MINUTE;
    await Promise.all(racers.map((racer) => racer.tickOnce(slot + 1000)));
    await Promise.all(racers.map((racer) => racer.tickOnce(slot + 2000)));
    assert.equal(due.length, 1);
    assert.equal(Date.parse(due[0]!.slot!), slot);
    const drills = await drillsOf(target);
    assert.deepEqual(
      drills.map((drill) => [drill.id, drill.subject, drill.trigger, drill.status]),
      [[due[0]!.runId, newest, 'schedule', 'queued']],
    );
  });

  it('verification every Nth backup: one drill of the Nth, across schedulers', async () => {
    const target = await scheduledTarget('0 0 1 1 *');
    await succeededBackup(target); // before the policy: does not count
    await catalog.pool.query(`update backstop.targets set verification = '{"everyNth": 2}' where id = $1`, [target.id]);
    const racers = connections.clients.slice(0, 3).map((client) => scheduler(client));
    const tickAll = async () => (await Promise.all(racers.map((racer) => racer.tickOnce()))).flatMap((result) => result.verifications.filter((drill) => drill.targetId === target.id));
    await succeededBackup(target);
    assert.deepEqual(await tickAll(), []);
    const second = await succeededBackup(target);
    const [drill, ...others] = await tickAll();
    assert.deepEqual(others, []);
    assert.equal(drill!.reason, 'everyNth');
    assert.equal(drill!.subjectRunId, second);
    assert.deepEqual(await tickAll(), []);
    await succeededBackup(target);
    assert.deepEqual(await tickAll(), []);
    const fourth = await succeededBackup(target);
    assert.equal((await tickAll())[0]?.subjectRunId, fourth);
    assert.deepEqual(
      (await drillsOf(target)).map((row) => row.subject),
      [second, fourth],
    );
  });

  it('a paused target gets no scheduled backup or drill; resuming settles what passed (no catch-up), the next slot runs', async () => {
    const deps = { pool: catalog.pool, config: { defaultStoreUrl: 'file:///tmp/backstop-scheduler-test', pgTools: { dirs: [], only: false } } };
    // Two identical targets whose schedules were set ten minutes ago: ten slots due, backups and drills.
    const make = async () => {
      const target = await scheduledTarget('* * * * *');
      await catalog.pool.query(`update backstop.targets set verification = '{"cron": "* * * * *", "everyNth": 1}' where id = $1;`, [target.id]);
      await catalog.pool.query(`update backstop.targets set schedule_since = now() - interval '10 minutes', verification_since = now() - interval '10 minutes' where id = $1`, [
        target.id,
      ]);
      await succeededBackup(target);
      return target;
    };
    const control = await make();
    const paused = await make();
    assert.equal((await pauseTarget(deps, paused.name, testActor)).paused, true);
    const s = scheduler();
    const mine = (result: Awaited<ReturnType<Scheduler['tickOnce']>>, target: TargetRecord) => ({
      scheduled: result.scheduled.filter((slot) => slot.targetId === target.id).map((slot) => slot.outcome.kind),
      drills: result.verifications
        .filter((drill) => drill.targetId === target.id)
        .map((drill) => drill.reason)
        .sort(),
    });

    const first = await s.tickOnce();
    assert.deepEqual(mine(first, control), { scheduled: ['created'], drills: ['cron', 'everyNth'] }, 'an unpaused target catches up');
    assert.deepEqual(mine(first, paused), { scheduled: [], drills: [] });
    assert.deepEqual(mine(await s.tickOnce(first.now + 5 * MINUTE), paused), { scheduled: [], drills: [] });
    assert.equal((await runsOf(paused)).length, 1, 'only its own backup');

    assert.equal((await resumeTarget(deps, paused.name, testActor)).paused, false);
    const resumed = await s.tickOnce();
    assert.deepEqual(mine(resumed, paused), { scheduled: [], drills: [] }, 'no burst, no catch-up after a resume');
    // Just past the first minute boundary after the resumed tick: exactly one slot has come since
    // (a fixed minute later would hold two when the resumed tick fell in a minute's last second).
    const next = await s.tickOnce(Math.floor(resumed.now / MINUTE) * MINUTE + MINUTE + 1000);
    assert.deepEqual(mine(next, paused), { scheduled: ['created'], drills: ['cron'] }, 'the first slot after the resume runs');
    assert.equal(next.scheduled.find((slot) => slot.targetId === paused.id)!.skipped, 0);
  });
});

describe('schedules through the CLI', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let env: Record<string, string>;

  before(async () => {
    catalog = await createTestCatalog();
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: 'file:///tmp/backstop-cli-schedule-test' };
  });

  after(async () => {
    await catalog.close();
  });

  it('an invalid cron or time zone is refused with exit code 2 and nothing is created', async () => {
    const badCron = await runCli(['target', 'add', 'app', '--database-url', 'postgres://u:secret@127.0.0.1:5432/app', '--schedule', '61 * * * *'], env);
    assert.equal(badCron.code, 2, badCron.stderr);
    assert.match(badCron.stderr, /--schedule: Invalid schedule: "61 \* \* \* \*" is not a valid cron expression.*\[INVALID_INPUT\]/);
    const badZone = await runCli(['target', 'add', 'app', '--database-url', 'postgres://u:secret@127.0.0.1:5432/app', '--schedule', '0 3 * * *', '--timezone', 'Europe/Atlantis'], env);
    assert.equal(badZone.code, 2, badZone.stderr);
    assert.match(badZone.stderr, /--timezone: "Europe\/Atlantis" is not a time zone/);
    assert.ok(!badZone.stderr.includes('secret'));
    const { rows } = await catalog.pool.query('select 1 from backstop.targets');
    assert.equal(rows.length, 0);
  });

  it('target add/update set and remove a schedule; `schedules` lists the next runs', async () => {
    const added = await runCli(
      ['target', 'add', 'app', '--database-url', 'postgres://u:secret@127.0.0.1:5432/app', '--schedule', '0 3 * * *', '--timezone', 'Europe/Paris', '--keep-last', '3', '--skip-checks'],
      env,
    );
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /schedule: 0 3 \* \* \* \(Europe\/Paris\), next run at \d{4}-\d\d-\d\dT\d\d:00:00\.000Z/);
    assert.match(added.stdout, /retention: last 3/);

    const listed = await runCli(['schedules', '--json', '--count', '2'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const [entry] = JSON.parse(listed.stdout);
    assert.equal(entry.target, 'app');
    assert.equal(entry.next.length, 2);
    assert.equal(Date.parse(entry.next[1]) - Date.parse(entry.next[0]) >= 23 * 3_600_000, true);

    const badUpdate = await runCli(['target', 'update', 'app', '--schedule', '0 3 * *'], env);
    assert.equal(badUpdate.code, 2, badUpdate.stderr);

    const retimed = await runCli(['target', 'update', 'app', '--timezone', 'UTC', '--json'], env);
    assert.equal(retimed.code, 0, retimed.stderr);
    assert.deepEqual(JSON.parse(retimed.stdout).schedule, { cron: '0 3 * * *', timezone: 'UTC' });

    const removed = await runCli(['target', 'update', 'app', '--no-schedule', '--json'], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(JSON.parse(removed.stdout).schedule, null);
    assert.equal(JSON.parse(removed.stdout).retention.keepLast, 3);

    const unknown = await runCli(['target', 'update', 'nope', '--schedule', '0 3 * * *'], env);
    assert.equal(unknown.code, 4, unknown.stderr);
  });

  it('target add/update schedule restore drills: every Nth backup, on a cron, or none', async () => {
    const added = await runCli(['target', 'add', 'drilled', '--database-url', 'postgres://u:secret@127.0.0.1:5432/app', '--verify-every', '5', '--skip-checks', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    assert.deepEqual(JSON.parse(added.stdout).verification, { everyNth: 5 });

    const cron = await runCli(['target', 'update', 'drilled', '--verify-cron', '0 4 * * 0', '--timezone', 'Europe/Paris'], env);
    assert.equal(cron.code, 0, cron.stderr);
    assert.match(cron.stdout, /verification: a drill of every 5th backup, a drill on 0 4 \* \* 0 \(Europe\/Paris\)/);
    const { rows } = await catalog.pool.query<{ verification: unknown }>(`select verification from backstop.targets where name = 'drilled'`);
    assert.deepEqual(rows[0]!.verification, { everyNth: 5, cron: '0 4 * * 0', timezone: 'Europe/Paris' });

    for (const [args, message] of [
      [['--verify-every', '0'], /--verify-every: must be a whole number from 1 to 1000/],
      [['--verify-every', 'often'], /--verify-every: must be a whole number/],
      [['--verify-cron', '61 * * * *'], /61/],
      [['--no-verify', '--verify-every', '2'], /cannot be combined with --no-verify/],
    ] as const) {
      const bad = await runCli(['target', 'update', 'drilled', ...args], env);
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, message);
    }
    const unchanged = await catalog.pool.query<{ verification: unknown }>(`select verification from backstop.targets where name = 'drilled'`);
    assert.deepEqual(unchanged.rows[0]!.verification, { everyNth: 5, cron: '0 4 * * 0', timezone: 'Europe/Paris' }, 'a refused update changes nothing');

    const removed = await runCli(['target', 'update', 'drilled', '--no-verify', '--json'], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(JSON.parse(removed.stdout).verification, null);
  });
});
