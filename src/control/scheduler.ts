import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { BackstopError, describeError } from '../core/errors.ts';
import { createSlotPlanner, planScheduleSlot } from '../core/scheduleSlots.ts';
import type { Queryable } from '../db/pool.ts';
import { listScheduledTargets, type ScheduledTarget } from '../db/schedules.ts';
import { queueScheduledBackups, type ScheduledRunOutcome } from '../operations/queueScheduledBackups.ts';
import { queueScheduledDrill } from '../operations/queueScheduledDrill.ts';

export interface ScheduledSlot {
  targetId: string;
  targetName: string;
  /** The slot, ISO 8601 UTC. */
  slot: string;
  /** Earlier missed slots skipped in favour of this one (downtime). */
  skipped: number;
  outcome: ScheduledRunOutcome;
}

/** A verification drill the scheduler queued (or would have: no succeeded backup yet). */
export interface VerificationSlot {
  targetId: string;
  targetName: string;
  /** `cron`: a slot of verification.cron (ISO 8601 in `slot`); `everyNth`: N more backups succeeded. */
  reason: 'cron' | 'everyNth';
  slot: string | null;
  /** The verification run queued; null when the target has no succeeded backup to drill. */
  runId: string | null;
  subjectRunId: string | null;
}

export interface TickResult {
  /** Database time the tick decided with (or the injected one), ms. */
  now: number;
  scheduled: ScheduledSlot[];
  verifications: VerificationSlot[];
  /** Targets whose schedule could not be evaluated (stored an invalid cron or time zone). */
  errors: { targetName: string; error: { code: string; message: string } }[];
  /** The next slot of any target, ms; null when none. */
  nextAt: number | null;
}

export interface SchedulerOptions {
  /** Longest wait between ticks (new or changed schedules are seen within it). Default 1 s. */
  maxIntervalMs?: number;
  /** Called for every slot a tick settled (created, taken by another scheduler, or skipped). */
  onScheduled?: (slot: ScheduledSlot) => void;
  /** Called for every verification drill this scheduler queued (exactly one scheduler does, per slot). */
  onVerificationDue?: (drill: VerificationSlot) => void | Promise<void>;
  /** false: no timer, ticks only through tickOnce (tests with an injected clock). Default true. */
  timer?: boolean;
}

export interface Scheduler {
  /** One pass now; `now` (ms) replaces the database clock (tests). */
  tickOnce(now?: number): Promise<TickResult>;
  stop(): Promise<void>;
}

/**
 * Creates the runs of schedule slots (targets.schedule: cron + time zone). Decides with the
 * database clock; any number of schedulers may run against one catalog, since each slot's run
 * is created by a single conditional insert guarded by the unique slot key. It queues through
 * the operations (src/operations/) and so the catalog's `backstop.create_run`, as the CLI and
 * the API do.
 */
export function startScheduler(
  deps: { db: Queryable; config: Pick<Config, 'runDeadlineMs'>; log: Logger; onScheduled?: (slot: ScheduledSlot) => void },
  options: SchedulerOptions = {},
): Scheduler {
  const maxIntervalMs = options.maxIntervalMs ?? 1000;
  const onScheduled = options.onScheduled ?? deps.onScheduled;
  const log = deps.log.child({ component: 'scheduler' });
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<TickResult> | null = null;
  const idle = new Map<string, { key: string; nextAt: number | null }>();
  const reported = new Map<string, string>();

  const tick = async (injectedNow?: number): Promise<TickResult> => {
    const { now: databaseNow, targets } = await listScheduledTargets(deps.db);
    const now = injectedNow ?? databaseNow;
    const result: TickResult = { now, scheduled: [], verifications: [], errors: [], nextAt: null };
    const considerNext = (at: number | null) => {
      if (at !== null && (result.nextAt === null || at < result.nextAt)) result.nextAt = at;
    };
    // One target's bad schedule (written around the CLI's checks) must not stop the others.
    const failed = new Map<string, unknown>();

    // Read → decide → apply. Decide, in pure code, which schedule slots are due; a minute
    // boundary can make thousands due at once, so each distinct schedule is evaluated once.
    const plan = createSlotPlanner(now);
    const due: { target: ScheduledTarget; slot: number; skipped: number }[] = [];
    for (const target of targets) {
      if (!target.schedule) continue;
      try {
        // A target known to have no slot due before its next one is skipped until then (the
        // key changes when anything moves).
        const key = `${target.schedule.cron}|${target.schedule.timezone}|${target.scheduleSettledAt}`;
        const known = idle.get(target.id);
        const decision =
          known && known.key === key && known.nextAt !== null && now < known.nextAt
            ? { slot: null, skipped: 0, nextAt: known.nextAt }
            : plan({ ...target.schedule, after: target.scheduleSettledAt });
        if (decision.slot === null) idle.set(target.id, { key, nextAt: decision.nextAt });
        considerNext(decision.nextAt);
        if (decision.slot !== null) due.push({ target, slot: decision.slot, skipped: decision.skipped });
      } catch (error) {
        failed.set(target.id, error);
      }
    }

    // Apply: the due slots' runs, a few set-based statements for all of them.
    if (due.length > 0) {
      try {
        const outcomes = await queueScheduledBackups(
          deps.db,
          deps.config,
          due.map(({ target, slot, skipped }) => ({ targetId: target.id, slot, skipped })),
        );
        for (const { target, slot, skipped } of due) {
          const outcome = outcomes.get(target.id) ?? { kind: 'taken' };
          const scheduled = { targetId: target.id, targetName: target.name, slot: new Date(slot).toISOString(), skipped, outcome };
          result.scheduled.push(scheduled);
          if (outcome.kind === 'created') {
            log.info({ target: target.name, slot: scheduled.slot, runId: outcome.runId, skippedSlots: skipped }, 'scheduled run created');
          } else if (outcome.kind === 'waiting') {
            log.warn({ target: target.name, slot: scheduled.slot, waitingRunId: outcome.waitingRunId }, 'slot skipped: a scheduled run of this target is still waiting to start');
          }
          onScheduled?.(scheduled);
        }
      } catch (error) {
        for (const { target } of due) failed.set(target.id, error);
      }
    }

    // Verification drills: few targets have a policy; each is settled and queued on its own.
    for (const target of targets) {
      const verification = target.verification;
      if (!verification || failed.has(target.id)) continue;
      try {
        const drilled = async (drill: VerificationSlot) => {
          result.verifications.push(drill);
          if (drill.runId) log.info({ target: target.name, reason: drill.reason, runId: drill.runId, subjectRunId: drill.subjectRunId }, 'verification drill queued');
          else log.warn({ target: target.name, reason: drill.reason }, 'verification drill due, but the target has no succeeded backup to verify');
          await options.onVerificationDue?.(drill);
        };
        if (verification.cron) {
          const decision = planScheduleSlot({
            cron: verification.cron,
            timezone: verification.timezone ?? target.schedule?.timezone ?? 'UTC',
            after: target.verificationSettledAt,
            now,
          });
          considerNext(decision.nextAt);
          if (decision.slot !== null) {
            const drill = await queueScheduledDrill(deps.db, deps.config, { targetId: target.id, slot: decision.slot });
            if (drill.claimed) {
              await drilled({
                targetId: target.id,
                targetName: target.name,
                reason: 'cron',
                slot: new Date(decision.slot).toISOString(),
                runId: drill.runId,
                subjectRunId: drill.subjectRunId,
              });
            }
          }
        }
        if (verification.everyNth !== undefined) {
          if (!Number.isInteger(verification.everyNth) || verification.everyNth < 1) {
            throw new BackstopError('INVALID_INPUT', `verification.everyNth must be a whole number from 1, got ${JSON.stringify(verification.everyNth)}.`);
          }
          const drill = await queueScheduledDrill(deps.db, deps.config, { targetId: target.id, everyNth: verification.everyNth });
          if (drill.claimed) {
            await drilled({ targetId: target.id, targetName: target.name, reason: 'everyNth', slot: null, runId: drill.runId, subjectRunId: drill.subjectRunId });
          }
        }
      } catch (error) {
        failed.set(target.id, error);
      }
    }

    for (const target of targets) {
      const error = failed.get(target.id);
      if (error === undefined) {
        reported.delete(target.id);
        continue;
      }
      const described = describeError(error);
      result.errors.push({ targetName: target.name, error: described });
      // Logged when it changes, not every second.
      if (reported.get(target.id) !== described.message) {
        reported.set(target.id, described.message);
        log.error({ target: target.name, err: error }, 'could not evaluate the schedule of this target');
      }
    }
    const present = new Set(targets.map((target) => target.id));
    for (const id of idle.keys()) if (!present.has(id)) idle.delete(id);
    for (const id of reported.keys()) if (!present.has(id)) reported.delete(id);
    return result;
  };

  const tickOnce = (now?: number): Promise<TickResult> => {
    // Ticks never overlap within one scheduler (another scheduler may tick at the same time).
    const previous = running ?? Promise.resolve(null);
    const next = previous.catch(() => null).then(() => tick(now));
    running = next;
    return next.finally(() => {
      if (running === next) running = null;
    });
  };

  const loop = async () => {
    if (stopped) return;
    let delay = maxIntervalMs;
    try {
      const result = await tickOnce();
      // Wake at the next slot boundary when it comes before the regular interval.
      if (result.nextAt !== null) delay = Math.min(maxIntervalMs, Math.max(10, result.nextAt - result.now + 5));
    } catch (error) {
      log.warn({ err: error }, 'scheduler tick failed; will retry');
    }
    if (!stopped) timer = setTimeout(loop, delay);
  };
  if (options.timer !== false) timer = setTimeout(loop, 0);

  return {
    tickOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running?.catch(() => null);
    },
  };
}
