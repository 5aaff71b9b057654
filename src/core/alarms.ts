import type { Cron } from 'croner';
import { formatBytes } from './formatBytes.ts';
import type { RunStatus } from './runState.ts';
import { parseSchedule, type Schedule } from './scheduleSlots.ts';

/**
 * Alarms about what did not happen, pure: the evaluator reads a target's facts with the
 * database clock, asks `assessAlarms` which conditions hold, and `planAlarmActions` what to
 * send given the alarms already active. No clock is read here.
 *
 *   backup_overdue      the newest good backup is older than the target's bound (its
 *                       max backup age, or its schedule's interval plus a grace)
 *   slot_missed         a schedule slot produced no run (no scheduler was up, or the slot was
 *                       settled without one after downtime or behind a waiting run)
 *   drill_overdue       no good restore drill within the drill schedule's interval plus a grace
 *   drill_failing       the newest finished restore drill failed or timed out
 *   store_unwritable    the newest finished backup failed writing to its store
 *   catalog_unreachable a worker could not reach the catalog (sent by the worker itself)
 *   slot_wal_warning    a continuous target's replication slot holds back more WAL on the
 *                       source than its warning threshold (the slot guard's last measure)
 *   slot_dropped        the slot guard dropped a continuous target's slot (or found it gone):
 *                       continuity stopped, with the reason
 *   rpo_exceeded        a continuous target's recovery point is older than its bound
 */
export const alarmKinds = [
  'backup_overdue',
  'slot_missed',
  'drill_overdue',
  'drill_failing',
  'store_unwritable',
  'catalog_unreachable',
  'slot_wal_warning',
  'slot_dropped',
  'rpo_exceeded',
] as const;
export type AlarmKind = (typeof alarmKinds)[number];

/** The structured fields every channel renders. */
export interface AlarmDetails {
  /** One sentence: what is wrong. */
  what: string;
  /** One sentence: what a person should do. */
  whatToDo: string;
}

/**
 * on: the condition holds. off: it does not. hold: nothing new is known (keep an active alarm,
 * raise none). once: it held and is already over (a missed slot whose catch-up succeeded):
 * raised if not yet, recovered if it was.
 */
export type ConditionState = 'on' | 'off' | 'hold' | 'once';

export interface AlarmCondition {
  kind: AlarmKind;
  state: ConditionState;
  /** When the condition began, ms (meaningful when on or once). */
  since: number;
  details: AlarmDetails;
}

export interface AlarmSettings {
  /** Added to a schedule's interval for a derived bound. */
  graceMs: number;
  /** How long a slot may go without a run before it counts as missed. */
  slotGraceMs: number;
}

export interface TargetAlarmFacts {
  targetId: string;
  targetName: string;
  paused: boolean;
  /** ms since the epoch, like every instant here. */
  createdAt: number;
  schedule: Schedule | null;
  /** When the schedule was last set, and the last slot the scheduler settled. */
  scheduleSince: number | null;
  scheduleLastSlot: number | null;
  maxBackupAgeMs: number | null;
  /** The drill schedule, when the target has one. */
  drillSchedule: Schedule | null;
  drillSince: number | null;
  /** Slots the scheduler settled without a run since the alarm last recovered. */
  missedSlots: number;
  missedAfter: number | null;
  missedAt: number | null;
  newestGoodBackupAt: number | null;
  lastFinishedBackup: { status: RunStatus; errorCode: string | null; finishedAt: number } | null;
  lastFinishedDrill: { status: RunStatus; errorCode: string | null; finishedAt: number } | null;
  newestGoodDrillAt: number | null;
  /** The stream of a continuous target; null for any other. */
  continuous: ContinuousAlarmFacts | null;
}

export interface ContinuousAlarmFacts {
  state: 'starting' | 'streaming' | 'stopped';
  stoppedReason: string | null;
  stoppedAt: number | null;
  /** The slot guard's last measure, and when it was taken. */
  retainedWalBytes: number | null;
  measuredAt: number | null;
  slotWarnBytes: number;
  /** The newest instant before which every commit is stored (see migration 023). */
  recoveryPoint: number;
  maxRpoMs: number;
}

/** "1 h 30 min", "45 s": a bound or an age for a person. */
export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`;
  return `${Math.floor(hours / 24)} d${hours % 24 ? ` ${hours % 24} h` : ''}`;
}

const iso = (ms: number) => new Date(ms).toISOString();

const failedStatuses: ReadonlySet<RunStatus> = new Set(['failed', 'timed_out']);

/** Something that should have happened by `reference + bound`: on once that instant has passed. */
function overdue(kind: AlarmKind, reference: number, bound: number, now: number, details: AlarmDetails): AlarmCondition {
  const since = reference + bound;
  return { kind, state: now > since ? 'on' : 'off', since, details };
}

/**
 * What a schedule gives at one instant, computed once per distinct (cron, time zone) in a pass:
 * a cron step costs about a millisecond, and thousands of targets share a few schedules.
 */
export type ScheduleMemo = Map<string, { cron: Cron; intervalMs: number | null; overdueSlot: number | undefined }>;

function scheduleAt(memo: ScheduleMemo, schedule: Schedule, now: number, slotGraceMs: number) {
  const key = `${schedule.cron}\u0000${schedule.timezone}`;
  let known = memo.get(key);
  if (!known) {
    const cron = parseSchedule(schedule.cron, schedule.timezone);
    // previousRuns is exclusive of its reference: +1 ms makes a slot exactly at the limit count.
    const [latest, before] = cron.previousRuns(2, new Date(now + 1)).map((date) => date.getTime());
    known = {
      cron,
      intervalMs: latest !== undefined && before !== undefined ? latest - before : null,
      overdueSlot: cron.previousRuns(1, new Date(now - slotGraceMs + 1))[0]?.getTime(),
    };
    memo.set(key, known);
  }
  return known;
}

export function assessAlarms(facts: TargetAlarmFacts, now: number, settings: AlarmSettings, memo: ScheduleMemo = new Map()): AlarmCondition[] {
  const name = facts.targetName;
  const conditions: AlarmCondition[] = [];
  const off = (kind: AlarmKind): AlarmCondition => ({ kind, state: 'off', since: now, details: { what: '', whatToDo: '' } });

  // backup_overdue. A paused target is stopped on purpose: its age says nothing new.
  const backupInterval = facts.schedule && facts.maxBackupAgeMs === null ? scheduleAt(memo, facts.schedule, now, settings.slotGraceMs).intervalMs : null;
  const bound = facts.paused ? null : (facts.maxBackupAgeMs ?? (backupInterval === null ? null : backupInterval + settings.graceMs));
  if (bound === null) conditions.push(off('backup_overdue'));
  else {
    const reference = facts.newestGoodBackupAt ?? Math.max(facts.createdAt, facts.maxBackupAgeMs === null ? (facts.scheduleSince ?? facts.createdAt) : facts.createdAt);
    conditions.push(
      overdue('backup_overdue', reference, bound, now, {
        what:
          facts.newestGoodBackupAt === null
            ? `${name} has no good backup, ${formatDuration(now - reference)} after it was set up (bound ${formatDuration(bound)}).`
            : `The newest good backup of ${name} is ${formatDuration(now - reference)} old, past its bound of ${formatDuration(bound)} (it finished ${iso(reference)}).`,
        whatToDo: `See why with \`backstop runs --target ${name}\`, check that a worker is running, and take a backup now with \`backstop trigger ${name}\`.`,
      }),
    );
  }

  // slot_missed.
  if (!facts.schedule || facts.paused) conditions.push(off('slot_missed'));
  else {
    const { cron, overdueSlot } = scheduleAt(memo, facts.schedule, now, settings.slotGraceMs);
    const settled = Math.max(facts.createdAt, facts.scheduleSince ?? -Infinity, facts.scheduleLastSlot ?? -Infinity);
    const whatToDo = `Keep \`backstop server\` (it runs the schedule) and a worker running; \`backstop runs --target ${name}\` shows the runs that followed.`;
    if (overdueSlot !== undefined && overdueSlot > settled) {
      conditions.push({
        kind: 'slot_missed',
        state: 'on',
        since: overdueSlot,
        details: { what: `The scheduled slot ${iso(overdueSlot)} of ${name} produced no run: no scheduler has run since.`, whatToDo },
      });
    } else if (facts.missedSlots > 0) {
      const first = facts.missedAfter === null ? null : (cron.nextRun(new Date(facts.missedAfter))?.getTime() ?? null);
      const recovered = facts.newestGoodBackupAt !== null && facts.missedAt !== null && facts.newestGoodBackupAt > facts.missedAt;
      conditions.push({
        kind: 'slot_missed',
        state: recovered ? 'once' : 'on',
        since: first ?? facts.missedAt ?? now,
        details: {
          what: `${facts.missedSlots} scheduled slot(s) of ${name}${first === null ? '' : ` from ${iso(first)} on`} produced no run (Backstop was down, or a scheduled run was still waiting for a worker).`,
          whatToDo,
        },
      });
    } else conditions.push(off('slot_missed'));
  }

  // drill_overdue.
  if (!facts.drillSchedule || facts.paused) conditions.push(off('drill_overdue'));
  else {
    const interval = scheduleAt(memo, facts.drillSchedule, now, settings.slotGraceMs).intervalMs;
    if (interval === null) conditions.push(off('drill_overdue'));
    else {
      const drillBound = interval + settings.graceMs;
      const reference = facts.newestGoodDrillAt ?? Math.max(facts.createdAt, facts.drillSince ?? facts.createdAt);
      conditions.push(
        overdue('drill_overdue', reference, drillBound, now, {
          what:
            facts.newestGoodDrillAt === null
              ? `No restore drill of ${name} has succeeded within ${formatDuration(drillBound)} of its drill schedule being set.`
              : `The newest good restore drill of ${name} is ${formatDuration(now - reference)} old, past ${formatDuration(drillBound)}.`,
          whatToDo: `A drill needs a good backup and a worker; run one now with \`backstop verify ${name}\`.`,
        }),
      );
    }
  }

  // drill_failing: a fact about the newest drill, whatever the policy says now.
  const drill = facts.lastFinishedDrill;
  if (drill && failedStatuses.has(drill.status)) {
    conditions.push({
      kind: 'drill_failing',
      state: 'on',
      since: drill.finishedAt,
      details: {
        what: `The newest restore drill of ${name} ${drill.status === 'timed_out' ? 'timed out' : 'failed'}${drill.errorCode ? ` (${drill.errorCode})` : ''}: its backups may not restore.`,
        whatToDo: `Read the drill's events with \`backstop runs --target ${name}\` and \`backstop runs show RUN_ID\`, fix the cause, and drill again with \`backstop verify ${name}\`.`,
      },
    });
  } else conditions.push({ ...off('drill_failing'), state: drill ? 'off' : 'hold' });

  // store_unwritable: judged from the runs' own error codes, not from probes of our own (see docs).
  // Only a success proves the store writable again; a failure for another reason proves nothing.
  const last = facts.lastFinishedBackup;
  const storeFailed = last !== null && last.status === 'failed' && last.errorCode === 'STORE_WRITE_FAILED';
  conditions.push({
    kind: 'store_unwritable',
    state: storeFailed ? 'on' : last?.status === 'succeeded' ? 'off' : 'hold',
    since: last?.finishedAt ?? now,
    details: {
      what: `The newest backup of ${name} could not write to its store (STORE_WRITE_FAILED).`,
      whatToDo: `Check the store's credentials, permissions and free space, then \`backstop target test ${name}\` writes a probe object and \`backstop trigger ${name}\` backs up.`,
    },
  });
  conditions.push(...assessContinuousAlarms(name, facts.continuous, now));
  return conditions;
}

/** slot_wal_warning, slot_dropped and rpo_exceeded: what the slot guard and the streamer recorded of a continuous target. */
function assessContinuousAlarms(name: string, stream: ContinuousAlarmFacts | null, now: number): AlarmCondition[] {
  const off = (kind: AlarmKind): AlarmCondition => ({ kind, state: 'off', since: now, details: { what: '', whatToDo: '' } });
  if (stream === null) return [off('slot_wal_warning'), off('slot_dropped'), off('rpo_exceeded')];
  if (stream.state === 'stopped') {
    return [
      off('slot_wal_warning'),
      {
        kind: 'slot_dropped',
        state: 'on',
        since: stream.stoppedAt ?? now,
        details: {
          what: `Continuous backup of ${name} stopped: ${stream.stoppedReason ?? 'no reason recorded'}.`,
          whatToDo: `A new base backup was queued; start continuity again with \`backstop target update ${name} --continuous\`, and see why the slot fell behind (a streamer down, the store failing).`,
        },
      },
      off('rpo_exceeded'),
    ];
  }
  const conditions: AlarmCondition[] = [off('slot_dropped')];
  const retained = stream.retainedWalBytes;
  if (retained !== null && retained > stream.slotWarnBytes) {
    conditions.push({
      kind: 'slot_wal_warning',
      state: 'on',
      since: stream.measuredAt ?? now,
      details: {
        what: `The replication slot of ${name} holds back ${formatBytes(retained)} of WAL on the source, over its warning threshold of ${formatBytes(stream.slotWarnBytes)}.`,
        whatToDo: `Check that a worker or server streams ${name} and that its store accepts writes; past the hard limit the slot is dropped to protect the source's disk.`,
      },
    });
  } else conditions.push(off('slot_wal_warning'));
  // A stream still starting has no base backup to replay onto: its recovery point is the backups' (backup_overdue).
  const rpo = now - stream.recoveryPoint;
  if (stream.state === 'streaming' && rpo > stream.maxRpoMs) {
    conditions.push({
      kind: 'rpo_exceeded',
      state: 'on',
      since: stream.recoveryPoint + stream.maxRpoMs,
      details: {
        what: `${name} could lose ${formatDuration(rpo)} of commits: nothing after ${iso(stream.recoveryPoint)} is known stored, past its bound of ${formatDuration(stream.maxRpoMs)}.`,
        whatToDo: `Check that a worker or server streams ${name} (\`backstop stream ${name}\` runs one in the foreground) and that its store accepts writes.`,
      },
    });
  } else conditions.push(off('rpo_exceeded'));
  return conditions;
}

export interface ActiveAlarm {
  id: number;
  targetId: string;
  kind: AlarmKind;
  since: number;
  lastSentAt: number;
  sentCount: number;
}

export type AlarmAction =
  | { type: 'raise'; targetId: string; kind: AlarmKind; since: number; details: AlarmDetails }
  | { type: 'repeat'; alarmId: number; targetId: string; kind: AlarmKind; details: AlarmDetails; sentCount: number }
  | { type: 'clear'; alarmId: number; targetId: string; kind: AlarmKind };

/**
 * What to send: a new alarm once, a repeat every `repeatMs` while it lasts (0: never), a
 * recovery when it clears. `details` of a repeat are today's (the age grows).
 */
export function planAlarmActions(conditions: readonly { targetId: string; condition: AlarmCondition }[], active: readonly ActiveAlarm[], now: number, repeatMs: number): AlarmAction[] {
  const byKey = new Map(active.map((alarm) => [`${alarm.targetId}|${alarm.kind}`, alarm]));
  const actions: AlarmAction[] = [];
  for (const { targetId, condition } of conditions) {
    const existing = byKey.get(`${targetId}|${condition.kind}`);
    const { kind, state, details } = condition;
    if (!existing) {
      if (state === 'on' || state === 'once') actions.push({ type: 'raise', targetId, kind, since: condition.since, details });
    } else if (state === 'off' || state === 'once') {
      actions.push({ type: 'clear', alarmId: existing.id, targetId, kind });
    } else if (repeatMs > 0 && now - existing.lastSentAt >= repeatMs) {
      // A held alarm repeats with the words it was raised with: nothing new is known.
      const repeated = { type: 'repeat' as const, alarmId: existing.id, targetId, kind, sentCount: existing.sentCount };
      actions.push({ ...repeated, details: state === 'on' ? details : { what: '', whatToDo: '' } });
    }
  }
  return actions;
}
