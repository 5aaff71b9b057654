import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { startScheduler, type Scheduler } from '../src/control/scheduler.ts';
import { createSlotPlanner, planScheduleSlot } from '../src/core/scheduleSlots.ts';
import { openConnections, type Connections } from './support/connections.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';

const MINUTE = 60_000;

describe('schedule slots for many targets at once (pure)', () => {
  it('createSlotPlanner decides exactly as planScheduleSlot, target by target', () => {
    const crons = ['* * * * *', '*/5 * * * *', '0 3 * * *', '30 2 * * *', '0 9 * * 1-5', '*/10 * * * * *', '@hourly', '15 */2 * * *'];
    const zones = ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata'];
    const base = Date.parse('2024-03-30T00:00:00Z');
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 * 24 * 3_600_000 }),
        fc.array(fc.record({ cron: fc.constantFrom(...crons), timezone: fc.constantFrom(...zones), after: fc.option(fc.integer({ min: -2 * 24 * 3_600_000, max: 0 })) }), {
          minLength: 1,
          maxLength: 12,
        }),
        (offset, targets) => {
          const now = base + offset;
          const plan = createSlotPlanner(now);
          for (const target of targets) {
            const input = { cron: target.cron, timezone: target.timezone, after: target.after === null ? null : now + target.after };
            assert.deepEqual(plan(input), planScheduleSlot({ ...input, now }), JSON.stringify({ ...input, now }));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('scheduling many targets at one boundary', { timeout: 300_000 }, () => {
  const TARGETS = 2500;
  let catalog: TestCatalog;
  let connections: Connections;
  const schedulers: Scheduler[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    connections = await openConnections(catalog.url, 3);
    await catalog.pool.query(
      `insert into backstop.targets (name, database_url, store_url, schedule)
       select 'many-' || i, 'postgres://u:p@127.0.0.1:1/none', 'file:///tmp/backstop-many', '{"cron": "* * * * *", "timezone": "UTC"}'::jsonb
       from generate_series(1, $1::int) i`,
      [TARGETS],
    );
  });

  after(async () => {
    await Promise.all(schedulers.map((scheduler) => scheduler.stop()));
    await connections.close();
    await catalog.close();
  });

  it(`three schedulers racing at one boundary: ${TARGETS} targets, exactly one run each, each reported created by one scheduler`, async () => {
    const log = pino({ level: 'silent' });
    for (const client of connections.clients) schedulers.push(startScheduler({ db: client, config: { runDeadlineMs: 3_600_000 }, log }, { timer: false }));
    const { rows } = await catalog.pool.query<{ since: string }>('select max(schedule_since) as since from backstop.targets');
    const boundary = Math.ceil(Date.parse(rows[0]!.since) / MINUTE) * MINUTE + MINUTE;

    const first = await Promise.all(schedulers.map((scheduler) => scheduler.tickOnce(boundary + 1000)));
    for (const result of first) assert.deepEqual(result.errors, []);
    const created = first.flatMap((result) => result.scheduled.filter((slot) => slot.outcome.kind === 'created'));
    assert.equal(created.length, TARGETS, 'every target created once, by one of the schedulers');
    assert.equal(new Set(created.map((slot) => slot.targetId)).size, TARGETS);
    const { rows: counts } = await catalog.pool.query<{ runs: number; targets: number; events: number }>(
      `select count(*)::int as runs, count(distinct target_id)::int as targets,
              (select count(*)::int from backstop.run_events e where e.kind = 'created') as events
       from backstop.runs where schedule_slot = $1`,
      [new Date(boundary).toISOString()],
    );
    assert.deepEqual(counts[0], { runs: TARGETS, targets: TARGETS, events: TARGETS });

    // A minute later the runs still wait in the queue: the slot is settled, no second run piles up.
    const second = await Promise.all(schedulers.map((scheduler) => scheduler.tickOnce(boundary + MINUTE + 1000)));
    const outcomes = second.flatMap((result) => result.scheduled.map((slot) => slot.outcome.kind));
    assert.ok(
      outcomes.every((kind) => kind === 'waiting' || kind === 'taken'),
      [...new Set(outcomes)].join(', '),
    );
    const { rows: total } = await catalog.pool.query<{ runs: number }>('select count(*)::int as runs from backstop.runs');
    assert.equal(total[0]!.runs, TARGETS);
  });
});
