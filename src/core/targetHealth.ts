import type { Cron } from 'croner';
import type { RunStatus } from './runState.ts';
import { parseSchedule, type Schedule } from './scheduleSlots.ts';

/**
 * How a target is doing, pure: the dashboard's overview asks this of every target. The clock
 * is passed in (the database's), so the rules are unit-testable without a catalog.
 *
 *   failing  the last finished backup failed or timed out, or the last restore drill did
 *   stale    scheduled, and no good backup since the slot before the latest one: two slots
 *            passed and the first of them never produced a backup (one slot of slack, because
 *            a backup takes a while after its slot)
 *   never    no good backup yet (and nothing failed)
 *   ok       otherwise
 */

export type TargetHealth = 'ok' | 'failing' | 'stale' | 'never';

export interface TargetHealthInput {
  /** Database time, ms since the epoch. */
  now: number;
  /** When the target was created, ms: a schedule cannot be missed before the target existed. */
  createdAt: number;
  schedule: Schedule | null;
  /** A paused target has no next slot and misses none: it is never stale. */
  paused?: boolean;
  /** The newest backup run that ended (any terminal status), or null. */
  lastFinishedBackup: { status: RunStatus; errorCode: string | null } | null;
  /** When the newest succeeded backup finished, ms, or null. */
  newestGoodBackupAt: number | null;
  /** The newest restore drill that ended, or null. */
  lastVerification: { status: RunStatus } | null;
}

export interface TargetHealthReport {
  health: TargetHealth;
  /** One sentence in plain words, for the overview. */
  reason: string;
  /** The next scheduled slot, ms, or null without a schedule (or when it never fires again). */
  nextScheduledAt: number | null;
}

const failedStatuses: ReadonlySet<RunStatus> = new Set(['failed', 'timed_out']);

// Counting costs a cron step per slot: bounded (an every-minute schedule missed for weeks).
const MAX_COUNTED = 100;

function countSlotsBetween(cron: Cron, after: number, until: number): number {
  let count = 0;
  for (let slot = cron.nextRun(new Date(after)); slot && slot.getTime() <= until && count < MAX_COUNTED; slot = cron.nextRun(slot)) count++;
  return count;
}

export function assessTargetHealth(input: TargetHealthInput): TargetHealthReport {
  const cron = input.schedule && !input.paused ? parseSchedule(input.schedule.cron, input.schedule.timezone) : null;
  const nextScheduledAt = cron?.nextRun(new Date(input.now))?.getTime() ?? null;
  const report = (health: TargetHealth, reason: string): TargetHealthReport => ({ health, reason, nextScheduledAt });

  const last = input.lastFinishedBackup;
  if (last && failedStatuses.has(last.status)) {
    return report('failing', `The last backup ${last.status === 'timed_out' ? 'timed out' : 'failed'}${last.errorCode ? ` (${last.errorCode})` : ''}.`);
  }
  if (input.lastVerification && failedStatuses.has(input.lastVerification.status)) {
    return report('failing', `The last restore drill ${input.lastVerification.status === 'timed_out' ? 'timed out' : 'failed'}: the newest verified backup may not restore.`);
  }
  if (cron) {
    // previousRuns is exclusive of its reference: +1 ms makes a slot exactly at `now` count.
    const [, slotBeforeLatest] = cron.previousRuns(2, new Date(input.now + 1)).map((date) => date.getTime());
    const missed = slotBeforeLatest !== undefined && slotBeforeLatest > input.createdAt && (input.newestGoodBackupAt ?? -Infinity) < slotBeforeLatest;
    if (missed) {
      if (input.newestGoodBackupAt === null) return report('stale', 'Scheduled, but no backup has succeeded yet.');
      const slots = countSlotsBetween(cron, input.newestGoodBackupAt, input.now);
      return report('stale', `No backup has succeeded in the last ${slots >= MAX_COUNTED ? `${MAX_COUNTED} or more` : slots} scheduled slots.`);
    }
  }
  const paused = input.paused && input.schedule ? ' Paused: no scheduled backups until it is resumed.' : '';
  if (input.newestGoodBackupAt === null) return report('never', `No backup yet.${paused}`);
  return report('ok', cron ? 'Backed up on schedule.' : paused ? paused.trim() : 'On demand only (no schedule).');
}
