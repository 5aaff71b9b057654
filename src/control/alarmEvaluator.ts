import type { Logger } from 'pino';
import { assessAlarms, planAlarmActions, type AlarmAction, type ScheduleMemo } from '../core/alarms.ts';
import type { AlarmConfig } from '../core/config.ts';
import { ALARM_LOCK_KEY, applyAlarmAction, readActiveAlarms, readAlarmFacts, type AlarmRecord } from '../db/alarms.ts';
import { withTransaction, type Pool } from '../db/pool.ts';
import { startPeriodicTask } from './periodicTask.ts';

export interface AlarmPass {
  /** False when another evaluator held the lock: it did this pass. */
  evaluated: boolean;
  sent: { action: AlarmAction['type']; alarm: AlarmRecord }[];
}

export interface AlarmEvaluator {
  evaluateOnce(): Promise<AlarmPass>;
  stop(): Promise<void>;
}

/** A link to the target's page on the dashboard, when its public address is known. */
export function alarmLink(publicUrl: string | undefined): (targetName: string) => string | null {
  return (targetName) => (publicUrl ? `${publicUrl}/#/targets/${encodeURIComponent(targetName)}` : null);
}

/**
 * Evaluates every target's alarms on an interval, in every server and worker: read the facts
 * with the database clock → decide in pure code (src/core/alarms.ts) → raise, repeat or clear
 * and hand the messages to the outbox, all in one transaction under an advisory lock, so that
 * with several processes one pass at a time decides and no alarm is sent twice. Because it runs
 * wherever Backstop runs, a slot missed while everything was down is alarmed by whichever
 * process comes back first.
 */
export function startAlarmEvaluator(deps: { pool: Pool; log: Logger }, config: AlarmConfig): AlarmEvaluator {
  const log = deps.log.child({ component: 'alarms' });
  const link = alarmLink(config.publicUrl);
  const pass = async (): Promise<AlarmPass> => {
    try {
      return await withTransaction(deps.pool, async (client) => {
        const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_xact_lock($1) as locked', [ALARM_LOCK_KEY]);
        if (!rows[0]?.locked) return { evaluated: false, sent: [] };
        const [{ now, targets }, active] = await Promise.all([readAlarmFacts(client), readActiveAlarms(client)]);
        const memo: ScheduleMemo = new Map();
        const conditions = targets.flatMap((facts) => {
          try {
            return assessAlarms(facts, now, config, memo).map((condition) => ({ targetId: facts.targetId, condition }));
          } catch (error) {
            // A schedule stored around the checks must not silence every other target's alarms.
            log.warn({ target: facts.targetName, err: error }, 'could not evaluate the alarms of this target');
            return [];
          }
        });
        const sent: AlarmPass['sent'] = [];
        for (const action of planAlarmActions(conditions, active, now, config.repeatMs)) {
          const alarm = await applyAlarmAction(client, action, link);
          if (!alarm) continue;
          sent.push({ action: action.type, alarm });
          const fields = { target: alarm.targetName, kind: alarm.kind, alarm: alarm.id, since: alarm.since };
          if (action.type === 'clear') log.info(fields, 'alarm cleared');
          else log.warn({ ...fields, what: alarm.what, sentCount: alarm.sentCount }, action.type === 'raise' ? 'alarm raised' : 'alarm repeated');
        }
        return { evaluated: true, sent };
      });
    } catch (error) {
      log.warn({ err: error }, 'alarm evaluation failed; will retry');
      return { evaluated: false, sent: [] };
    }
  };
  const task = startPeriodicTask(config.intervalMs, pass, { firstDelayMs: 0 });
  return { evaluateOnce: task.runOnce, stop: task.stop };
}
