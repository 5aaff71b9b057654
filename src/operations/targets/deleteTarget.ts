import type { AuditActor } from '../../core/auditActor.ts';
import { slotNameFor } from '../../core/changeSegment.ts';
import { assertTargetName } from '../../core/targetName.ts';
import { getStream } from '../../db/continuousStreams.ts';
import { deleteTarget as deleteStoredTarget, findTargetWithSecret, type KeptBackup } from '../../db/targets.ts';
import { audited, auditSubject } from '../recordAudit.ts';
import { dropSourceContinuity } from './continuity.ts';
import type { TargetDeps } from './targetDeps.ts';

export interface DeletedTarget {
  deleted: string;
  /** The target's store when it was deleted. */
  storeUrl: string;
  /** Its backups, newest first: they stay in their stores (`backstop import` of a store brings them back). */
  keptBackups: KeptBackup[];
  /** What could not be done on the source (a continuous target's slot and publication left there), with what to do by hand. */
  warnings?: string[];
}

/**
 * Deletes a target and its run history; refused (TARGET_BUSY) while one of its runs is not
 * finished. Its backups are not deleted: they are listed, so a person knows where they are.
 * A continuous target's slot and publication are dropped on the source once the row is gone
 * (with it its stream row, so no streamer holds on to the slot).
 */
export async function deleteTarget(deps: TargetDeps, name: string, actor: AuditActor): Promise<DeletedTarget> {
  return audited(deps.pool, actor, { action: 'target.delete', subject: auditSubject(name), detailsOf: (deleted) => ({ keptBackups: deleted.keptBackups.length }) }, async () => {
    assertTargetName(name, 'target');
    const target = await findTargetWithSecret(deps.pool, name);
    const stream = target ? await getStream(deps.pool, target.id) : null;
    const { storeUrl, keptBackups } = await deleteStoredTarget(deps.pool, name);
    if (!target || !(target.continuous || (stream && stream.state !== 'stopped'))) return { deleted: name, storeUrl, keptBackups };
    const slot = stream?.slotName ?? slotNameFor(target.id);
    const { warnings } = await dropSourceContinuity(target.databaseUrl, slot, stream?.publicationName ?? slot);
    return { deleted: name, storeUrl, keptBackups, ...(warnings.length > 0 ? { warnings } : {}) };
  });
}
