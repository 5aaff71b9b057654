import type { Config } from '../core/config.ts';
import type { Queryable } from '../db/pool.ts';
import { createScheduledRuns, type DueSlot, type ScheduledRunOutcome } from '../db/schedules.ts';

export type { DueSlot, ScheduledRunOutcome } from '../db/schedules.ts';

/**
 * Queues the backups of due schedule slots, what a schedule does. Each run is made by the
 * catalog's `backstop.create_run`, as a triggered one is; exactly one per slot whatever the
 * number of schedulers, a few set-based statements for thousands of slots.
 */
export async function queueScheduledBackups(db: Queryable, config: Pick<Config, 'runDeadlineMs'>, slots: readonly DueSlot[]): Promise<Map<string, ScheduledRunOutcome>> {
  return createScheduledRuns(db, slots, config.runDeadlineMs);
}
