import { describeError } from '../../core/errors.ts';
import { upcomingSlots } from '../../core/scheduleSlots.ts';
import { databaseNow } from '../../db/retention.ts';
import { listTargets as listStoredTargets, type RetentionConfig } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';

export interface TargetSchedule {
  target: string;
  cron: string;
  timezone: string;
  paused: boolean;
  /** The next slots (ISO 8601), by the database clock; none while paused. */
  next: string[];
  retention: RetentionConfig | null;
  /** Why the next slots could not be computed (a schedule stored around the checks). */
  error: string | null;
}

/** Every scheduled target with its next `count` runs. */
export async function listTargetSchedules(deps: Pick<TargetDeps, 'pool'>, count: number): Promise<TargetSchedule[]> {
  const now = await databaseNow(deps.pool);
  return (await listStoredTargets(deps.pool))
    .filter((target) => target.schedule)
    .map((target) => {
      let next: string[] = [];
      let error: string | null = null;
      try {
        if (!target.paused) next = upcomingSlots(target.schedule!, now, count).map((at) => new Date(at).toISOString());
      } catch (problem) {
        error = describeError(problem).message;
      }
      return { target: target.name, cron: target.schedule!.cron, timezone: target.schedule!.timezone, paused: target.paused, next, retention: target.retention, error };
    });
}
