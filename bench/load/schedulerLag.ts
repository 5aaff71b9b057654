import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import pino from 'pino';
import { startScheduler } from '../../src/control/scheduler.ts';
import type { Pool } from '../../src/db/pool.ts';

/**
 * Scheduler lag at the minute boundary: every target has the schedule `* * * * *`, so at
 * each boundary one run per target is due at once. A run "exists" when its insert has
 * committed: the insert's pg_notify (sent at commit) is timed by a listening connection,
 * for every run. Lag = that moment − the slot's boundary.
 */

export interface BoundaryLag {
  slot: string;
  runs: number;
  /** Commit (notification received) − boundary, ms, sorted. */
  visibleMs: number[];
  /** created_at (the inserting statement's start, database clock) − boundary, ms, sorted. */
  createdMs: number[];
}

export interface SchedulerLagResult {
  boundaries: BoundaryLag[];
  /** Durations of ticks with nothing due (what the scheduler costs every second), ms, sorted. */
  idleTickMs: number[];
}

const MINUTE = 60_000;

export async function measureSchedulerLag(
  pool: Pool,
  catalogUrl: string,
  options: { targets: number; boundaries: number; log: (message: string) => void },
): Promise<SchedulerLagResult> {
  const listener = new pg.Client({ connectionString: catalogUrl, application_name: 'bench-listener' });
  listener.on('error', () => {});
  await listener.connect();
  const seenAt = new Map<string, number>();
  listener.on('notification', (message) => {
    if (message.payload) seenAt.set(message.payload, Date.now());
  });
  await listener.query('listen backstop_runs');

  const log = pino({ level: 'warn' });
  const scheduler = startScheduler({ db: pool, config: { runDeadlineMs: 3_600_000 }, log });
  const boundaries: BoundaryLag[] = [];
  try {
    for (let index = 0; index < options.boundaries; index++) {
      const { rows } = await pool.query<{ now: string }>('select now() as now');
      let slot = Math.ceil(Date.parse(rows[0]!.now) / MINUTE) * MINUTE;
      // The scheduler needs a moment to know every target before the boundary it is timed at.
      if (slot - Date.parse(rows[0]!.now) < 10_000) slot += MINUTE;
      options.log(`scheduler lag: waiting for the boundary at ${new Date(slot).toISOString()}`);
      const deadline = slot + 120_000;
      let created = 0;
      while (Date.now() < deadline) {
        await sleep(Date.now() < slot ? Math.min(1000, slot - Date.now() + 50) : 250);
        if (Date.now() < slot) continue;
        created = (await pool.query<{ count: number }>(`select count(*)::int as count from backstop.runs where schedule_slot = $1`, [new Date(slot).toISOString()])).rows[0]!.count;
        if (created >= options.targets) break;
      }
      // Every notification of the slot has arrived once the count is complete (they are sent at commit).
      await sleep(200);
      const { rows: runs } = await pool.query<{ id: string; created_ms: number }>(
        `select id, extract(epoch from created_at) * 1000 as created_ms from backstop.runs where schedule_slot = $1`,
        [new Date(slot).toISOString()],
      );
      const visibleMs = runs.map((run) => (seenAt.get(run.id) ?? Number.NaN) - slot).sort((a, b) => a - b);
      const createdMs = runs.map((run) => Number(run.created_ms) - slot).sort((a, b) => a - b);
      boundaries.push({ slot: new Date(slot).toISOString(), runs: runs.length, visibleMs, createdMs });
      options.log(`  ${runs.length} runs; the last one visible ${((visibleMs.at(-1) ?? Number.NaN) / 1000).toFixed(2)} s after the boundary`);
      // End them, so that the next slot is not skipped as "a scheduled run still waits".
      await pool.query(`delete from backstop.runs where schedule_slot = $1`, [new Date(slot).toISOString()]);
    }
  } finally {
    await scheduler.stop();
    await listener.end().catch(() => {});
  }

  // The steady cost: a tick with nothing due reads every target and plans nothing.
  const quiet = startScheduler({ db: pool, config: { runDeadlineMs: 3_600_000 }, log }, { timer: false });
  const idleTickMs: number[] = [];
  await quiet.tickOnce();
  for (let tick = 0; tick < 10; tick++) {
    const started = performance.now();
    const result = await quiet.tickOnce();
    if (result.scheduled.length === 0) idleTickMs.push(performance.now() - started);
  }
  await quiet.stop();
  return { boundaries, idleTickMs: idleTickMs.sort((a, b) => a - b) };
}
