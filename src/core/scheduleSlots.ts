import { Cron } from 'croner';
import { BackstopError } from './errors.ts';

/**
 * Schedule slots, pure: no clock is read here, `now` is always passed in (the scheduler uses
 * the database's clock). A slot is one instant at which a cron expression fires; the catalog
 * records at most one run per (target, slot).
 */

export interface Schedule {
  cron: string;
  timezone: string;
}

/** Whether `timezone` is an IANA zone name this runtime knows (e.g. Europe/Paris, UTC). */
export function isValidTimezone(timezone: string): boolean {
  if (timezone.trim() === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

// Nicknames croner understands; ISO dates (one-shot "patterns") are refused on purpose.
const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

/**
 * Checks a cron expression and time zone; throws INVALID_INPUT with what to write instead.
 * Five fields (minute hour day month weekday) or six (with seconds first), or a nickname.
 */
export function parseSchedule(cron: string, timezone = 'UTC', what = 'schedule'): Cron {
  const problems: string[] = [];
  const expression = cron.trim();
  const fields = expression.split(/\s+/).filter(Boolean);
  const nickname = NICKNAMES.has(expression.toLowerCase());
  if (!nickname && (fields.length < 5 || fields.length > 6)) {
    problems.push(
      `"${cron}" is not a cron expression: use 5 fields (minute hour day-of-month month day-of-week, e.g. "0 3 * * *"), 6 with seconds first, or @daily / @hourly / @weekly / @monthly`,
    );
  }
  if (!isValidTimezone(timezone)) {
    problems.push(`"${timezone}" is not a time zone: use an IANA name such as UTC, Europe/Paris or America/New_York`);
  }
  let parsed: Cron | undefined;
  if (problems.length === 0) {
    try {
      parsed = new Cron(expression, { timezone, paused: true, mode: '5-or-6-parts' });
      // A pattern that can never fire (e.g. 30 February) is as useless as a malformed one.
      if (parsed.nextRun(new Date(0)) === null) throw new Error('it never fires');
    } catch (error) {
      problems.push(`"${cron}" is not a valid cron expression: ${(error as Error).message.replace(/^CronPattern: /, '')}`);
    }
  }
  if (problems.length > 0 || !parsed) {
    throw new BackstopError('INVALID_INPUT', `Invalid ${what}: ${problems.join('; ')}.`);
  }
  return parsed;
}

export interface SlotInput {
  cron: string;
  timezone: string;
  /**
   * Slots at or before this instant (ms) are settled: the last slot already created, or when
   * the schedule was set. Null: nothing is settled, the latest slot up to `now` is due.
   */
  after: number | null;
  /** The current time (database clock), ms since the epoch. */
  now: number;
}

export interface SlotDecision {
  /** The slot to create a run for now: the latest slot in (after, now]; null when none. */
  slot: number | null;
  /** Earlier unsettled slots skipped in favour of `slot` (downtime), counted up to `MAX_COUNTED`. */
  skipped: number;
  /** The first slot strictly after `now`; null when the expression never fires again. */
  nextAt: number | null;
}

// Counting is informational (events, logs) and costs a cron step per slot: bounded.
const MAX_COUNTED = 100;

/**
 * After downtime only the latest missed slot is due: one catch-up run per target, never a
 * storm of one run per missed slot.
 */
export function planScheduleSlot(input: SlotInput): SlotDecision {
  const cron = parseSchedule(input.cron, input.timezone);
  // previousRuns is exclusive of its reference: +1 ms makes a slot exactly at `now` count.
  const latest = cron.previousRuns(1, new Date(input.now + 1))[0]?.getTime() ?? null;
  const next = cron.nextRun(new Date(input.now))?.getTime() ?? null;
  if (latest === null || (input.after !== null && latest <= input.after)) {
    return { slot: null, skipped: 0, nextAt: next };
  }
  let skipped = 0;
  if (input.after !== null) {
    let slot = cron.nextRun(new Date(input.after));
    while (slot !== null && slot.getTime() < latest && skipped < MAX_COUNTED) {
      skipped++;
      slot = cron.nextRun(slot);
    }
  }
  return { slot: latest, skipped, nextAt: next };
}

/**
 * `planScheduleSlot` for many targets at one instant. Evaluating a cron costs about a
 * millisecond, which is 10 s for 10,000 targets at a minute boundary: here each distinct
 * (cron, time zone) is evaluated once for `now` — its latest slot, the one before it, and the
 * next — and each target only compares its settled instant with those. Only a target that
 * missed slots (downtime) falls back to the full computation, to count them.
 */
export function createSlotPlanner(now: number): (input: Omit<SlotInput, 'now'>) => SlotDecision {
  const schedules = new Map<string, { latest: number | null; beforeLatest: number | null; next: number | null }>();
  return (input) => {
    const key = `${input.cron}\u0000${input.timezone}`;
    let known = schedules.get(key);
    if (!known) {
      const cron = parseSchedule(input.cron, input.timezone);
      // previousRuns is exclusive of its reference and newest first: +1 ms makes a slot exactly at `now` count.
      const [latest, beforeLatest] = cron.previousRuns(2, new Date(now + 1)).map((date) => date.getTime());
      known = { latest: latest ?? null, beforeLatest: beforeLatest ?? null, next: cron.nextRun(new Date(now))?.getTime() ?? null };
      schedules.set(key, known);
    }
    if (known.latest === null || (input.after !== null && known.latest <= input.after)) return { slot: null, skipped: 0, nextAt: known.next };
    // No slot lies strictly between `after` and the latest one: nothing was missed.
    if (input.after === null || known.beforeLatest === null || input.after >= known.beforeLatest) return { slot: known.latest, skipped: 0, nextAt: known.next };
    return planScheduleSlot({ ...input, now });
  };
}

/** The next `count` slots strictly after `now`, for display. */
export function upcomingSlots(schedule: Schedule, now: number, count: number): number[] {
  return parseSchedule(schedule.cron, schedule.timezone)
    .nextRuns(count, new Date(now))
    .map((date) => date.getTime());
}
