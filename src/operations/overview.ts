import { assessTargetHealth, type TargetHealth } from '../core/targetHealth.ts';
import { listActiveAlarms, type AlarmRecord } from '../db/alarms.ts';
import type { Queryable } from '../db/pool.ts';
import { databaseNow } from '../db/retention.ts';
import { listTargetActivity, type RunBrief } from '../db/targetActivity.ts';
import type { ScheduleConfig } from '../db/targets.ts';

export interface TargetSummary {
  name: string;
  health: TargetHealth;
  healthReason: string;
  schedule: ScheduleConfig | null;
  executor: 'worker' | 'github';
  nextScheduledAt: string | null;
  lastRun: RunBrief | null;
  activeRun: RunBrief | null;
  newestBackup: RunBrief | null;
  newestBackupAgeSeconds: number | null;
  lastVerification: RunBrief | null;
  /** Alarms active now. */
  alarms: AlarmRecord[];
}

/**
 * Every target at a glance, judged by the database clock: its health, last run, the backup in
 * progress, the newest good backup and its age, the last drill and the next scheduled run.
 */
export async function overview(db: Queryable): Promise<{ now: string; items: TargetSummary[] }> {
  const [now, targets, alarms] = await Promise.all([databaseNow(db), listTargetActivity(db), listActiveAlarms(db)]);
  const items = targets.map((target): TargetSummary => {
    const newestGoodBackupAt = target.newestBackup?.finishedAt ? Date.parse(target.newestBackup.finishedAt) : null;
    const assessed = assessTargetHealth({
      now,
      createdAt: Date.parse(target.createdAt),
      schedule: target.schedule,
      paused: target.paused,
      lastFinishedBackup: target.lastFinishedRun ? { status: target.lastFinishedRun.status, errorCode: target.lastFinishedRun.error?.code ?? null } : null,
      newestGoodBackupAt,
      lastVerification: target.lastVerification,
    });
    return {
      name: target.name,
      health: assessed.health,
      healthReason: assessed.reason,
      schedule: target.schedule,
      executor: target.executor,
      nextScheduledAt: assessed.nextScheduledAt === null ? null : new Date(assessed.nextScheduledAt).toISOString(),
      lastRun: target.lastRun,
      activeRun: target.activeRun,
      newestBackup: target.newestBackup,
      newestBackupAgeSeconds: newestGoodBackupAt === null ? null : Math.max(0, (now - newestGoodBackupAt) / 1000),
      lastVerification: target.lastVerification,
      alarms: alarms.filter((alarm) => alarm.targetName === target.name),
    };
  });
  return { now: new Date(now).toISOString(), items };
}
