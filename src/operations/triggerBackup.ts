import { z } from 'zod';
import type { AuditActor } from '../core/auditActor.ts';
import type { Config } from '../core/config.ts';
import type { Queryable } from '../db/pool.ts';
import { createRun, type RunRecord } from '../db/runRecords.ts';
import { getTarget } from '../db/targets.ts';
import { parseInput } from '../core/inputProblems.ts';
import { audited } from './recordAudit.ts';
import { targetNameSchema as targetName } from './targets/targetInput.ts';

export const triggerRequest = z.strictObject({ target: targetName.describe('Name of the target to back up.') }).meta({ examples: [{ target: 'app' }] });

export type TriggerRequest = z.input<typeof triggerRequest>;

/**
 * Queues a backup of a target; a worker, a dispatched CI job or `backstop run ID` executes it.
 * The run is made by the catalog's `backstop.create_run`, as the scheduler's and the edge
 * function's are. `trigger` says through what (manual, api, demo, quickstart), `actor` who asked
 * (the audit trail records it).
 */
export async function triggerBackup(db: Queryable, config: Pick<Config, 'runDeadlineMs'>, request: TriggerRequest, origin: { trigger: string; actor: AuditActor }): Promise<RunRecord> {
  const subject = typeof (request as { target?: unknown } | null)?.target === 'string' ? (request as { target: string }).target.slice(0, 200) : null;
  return audited(db, origin.actor, { action: 'run.trigger', subject, detailsOf: (run) => ({ runId: run.id }) }, async () => {
    const { target: name } = parseInput(triggerRequest, request);
    const target = await getTarget(db, name);
    return createRun(db, { targetId: target.id, trigger: origin.trigger, runDeadlineMs: config.runDeadlineMs });
  });
}
