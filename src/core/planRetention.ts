import { BackstopError } from './errors.ts';
import { isValidTimezone } from './scheduleSlots.ts';

/**
 * Retention planning, pure: which succeeded backups to keep and which to delete, decided from
 * their times and a keep-last + grandfather-father-son policy. Each rule is applied on its
 * own to the whole list (as restic does), so a backup may be kept for several reasons and
 * planning again on the kept set keeps all of it.
 */

export interface RetentionPolicy {
  /** The N newest backups. */
  keepLast?: number;
  /** The newest backup of each of the N most recent days that have a backup. */
  daily?: number;
  /** The newest backup of each of the N most recent ISO weeks that have a backup. */
  weekly?: number;
  /** The newest backup of each of the N most recent months that have a backup. */
  monthly?: number;
  /** Time zone in which days, weeks and months begin. Default UTC. */
  timezone?: string;
}

export interface RetentionBackup {
  id: string;
  /** When the backup was taken, ms since the epoch. */
  takenAt: number;
  /** Its latest verification drill passed. */
  verified: boolean;
}

export type KeepRule = 'newest' | 'newest-verified' | 'last' | 'daily' | 'weekly' | 'monthly' | 'future';

export interface KeepReason {
  rule: KeepRule;
  /** The day (YYYY-MM-DD), ISO week (YYYY-Www) or month (YYYY-MM) this backup stands for. */
  period?: string;
}

export interface RetentionPlan {
  /** Newest first. */
  keep: { id: string; takenAt: number; reasons: KeepReason[] }[];
  /** Newest first. */
  delete: { id: string; takenAt: number }[];
}

const COUNT_FIELDS = ['keepLast', 'daily', 'weekly', 'monthly'] as const;

/** Checks a policy; reports every problem at once. */
export function validateRetentionPolicy(policy: RetentionPolicy): RetentionPolicy {
  const problems: string[] = [];
  for (const field of COUNT_FIELDS) {
    const value = policy[field];
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > 100_000)) {
      problems.push(`${field} must be a whole number from 0 to 100000, got ${JSON.stringify(value)}`);
    }
  }
  if (COUNT_FIELDS.every((field) => !policy[field])) {
    problems.push('keep at least one backup by some rule (keep-last, daily, weekly or monthly above 0)');
  }
  if (policy.timezone !== undefined && !isValidTimezone(policy.timezone)) {
    problems.push(`"${policy.timezone}" is not a time zone: use an IANA name such as UTC or Europe/Paris`);
  }
  if (problems.length > 0) throw new BackstopError('INVALID_INPUT', `Invalid retention policy: ${problems.join('; ')}.`);
  return policy;
}

/**
 * Never deletes the newest backup nor the newest verified one, whatever the policy; keeps
 * anything taken after `now` (a clock it cannot reason about).
 */
export function planRetention(backups: readonly RetentionBackup[], policy: RetentionPolicy, now: number): RetentionPlan {
  const sorted = [...backups].sort((a, b) => b.takenAt - a.takenAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const reasons = new Map<string, KeepReason[]>();
  const keep = (id: string, reason: KeepReason) => {
    const list = reasons.get(id);
    if (list) list.push(reason);
    else reasons.set(id, [reason]);
  };

  const newest = sorted[0];
  if (newest) keep(newest.id, { rule: 'newest' });
  const newestVerified = sorted.find((backup) => backup.verified);
  if (newestVerified) keep(newestVerified.id, { rule: 'newest-verified' });
  for (const backup of sorted) if (backup.takenAt > now) keep(backup.id, { rule: 'future' });
  for (const backup of sorted.slice(0, policy.keepLast ?? 0)) keep(backup.id, { rule: 'last' });

  const calendar = calendarIn(policy.timezone ?? 'UTC');
  const periodRules: [rule: 'daily' | 'weekly' | 'monthly', count: number | undefined, period: (at: number) => string][] = [
    ['daily', policy.daily, calendar.day],
    ['weekly', policy.weekly, calendar.week],
    ['monthly', policy.monthly, calendar.month],
  ];
  for (const [rule, count, periodOf] of periodRules) {
    if (!count) continue;
    const seen = new Set<string>();
    // Newest first: the first backup met in a period is that period's newest.
    for (const backup of sorted) {
      if (seen.size >= count) break;
      const period = periodOf(backup.takenAt);
      if (seen.has(period)) continue;
      seen.add(period);
      keep(backup.id, { rule, period });
    }
  }

  const plan: RetentionPlan = { keep: [], delete: [] };
  for (const backup of sorted) {
    const why = reasons.get(backup.id);
    if (why) plan.keep.push({ id: backup.id, takenAt: backup.takenAt, reasons: why });
    else plan.delete.push({ id: backup.id, takenAt: backup.takenAt });
  }
  return plan;
}

/** "daily:2024-05-01", "last", … for display. */
export function describeReason(reason: KeepReason): string {
  return reason.period ? `${reason.rule}:${reason.period}` : reason.rule;
}

interface Calendar {
  day(at: number): string;
  week(at: number): string;
  month(at: number): string;
}

function calendarIn(timezone: string): Calendar {
  const format = new Intl.DateTimeFormat('en-US', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit' });
  const localDate = (at: number) => {
    const parts = Object.fromEntries(format.formatToParts(new Date(at)).map((part) => [part.type, part.value]));
    return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day) };
  };
  const pad = (value: number, width = 2) => String(value).padStart(width, '0');
  return {
    day(at) {
      const { year, month, day } = localDate(at);
      return `${pad(year, 4)}-${pad(month)}-${pad(day)}`;
    },
    month(at) {
      const { year, month } = localDate(at);
      return `${pad(year, 4)}-${pad(month)}`;
    },
    week(at) {
      // ISO 8601 week of the local calendar date: the week belongs to the year of its Thursday.
      const { year, month, day } = localDate(at);
      const date = new Date(Date.UTC(year, month - 1, day));
      const weekday = date.getUTCDay() || 7;
      date.setUTCDate(date.getUTCDate() + 4 - weekday);
      const weekYear = date.getUTCFullYear();
      const week = Math.ceil(((date.getTime() - Date.UTC(weekYear, 0, 1)) / 86_400_000 + 1) / 7);
      return `${pad(weekYear, 4)}-W${pad(week)}`;
    },
  };
}
