import type { Config } from '../core/config.ts';
import type { Queryable } from '../db/pool.ts';
import { enqueueNthDrill, enqueueScheduledDrill, type ScheduledDrill } from '../db/schedules.ts';

export type { ScheduledDrill } from '../db/schedules.ts';

/**
 * Queues the drill a target's verification policy asks for: at a slot of its cron (`slot`,
 * ms), or once every Nth backup succeeded (`everyNth`). The drill verifies the target's newest
 * succeeded backup and is made by `backstop.create_run`, as `backstop verify`'s is; exactly one
 * scheduler settles each slot (or each Nth backup).
 */
export async function queueScheduledDrill(
  db: Queryable,
  config: Pick<Config, 'runDeadlineMs'>,
  input: { targetId: string; slot: number } | { targetId: string; everyNth: number },
): Promise<ScheduledDrill> {
  return 'slot' in input
    ? enqueueScheduledDrill(db, { targetId: input.targetId, slot: input.slot, runDeadlineMs: config.runDeadlineMs })
    : enqueueNthDrill(db, { targetId: input.targetId, everyNth: input.everyNth, runDeadlineMs: config.runDeadlineMs });
}
