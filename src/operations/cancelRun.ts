import { describeAuditActor, type AuditActor } from '../core/auditActor.ts';
import type { Queryable } from '../db/pool.ts';
import { requestCancel, type RunRecord } from '../db/runRecords.ts';
import { audited } from './recordAudit.ts';

/**
 * Cancels a run: a queued or dispatched one ends `cancelled` at once, a running one becomes
 * `cancelling` and its runner stops at its next heartbeat. A finished run is refused
 * (RUN_ALREADY_TERMINAL). The run's events name who asked; the audit trail records it.
 */
export async function cancelRun(db: Queryable, runId: string, actor: AuditActor): Promise<RunRecord> {
  return audited(db, actor, { action: 'run.cancel', subject: runId }, () => requestCancel(db, runId, `Cancelled on request (${describeAuditActor(actor)}).`));
}
