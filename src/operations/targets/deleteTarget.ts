import type { AuditActor } from '../../core/auditActor.ts';
import { assertTargetName } from '../../core/targetName.ts';
import { deleteTarget as deleteStoredTarget, type KeptBackup } from '../../db/targets.ts';
import { audited, auditSubject } from '../recordAudit.ts';
import type { TargetDeps } from './targetDeps.ts';

export interface DeletedTarget {
  deleted: string;
  /** The target's store when it was deleted. */
  storeUrl: string;
  /** Its backups, newest first: they stay in their stores (`backstop import` of a store brings them back). */
  keptBackups: KeptBackup[];
}

/**
 * Deletes a target and its run history; refused (TARGET_BUSY) while one of its runs is not
 * finished. Its backups are not deleted: they are listed, so a person knows where they are.
 */
export async function deleteTarget(deps: TargetDeps, name: string, actor: AuditActor): Promise<DeletedTarget> {
  return audited(deps.pool, actor, { action: 'target.delete', subject: auditSubject(name), detailsOf: (deleted) => ({ keptBackups: deleted.keptBackups.length }) }, async () => {
    assertTargetName(name, 'target');
    const { storeUrl, keptBackups } = await deleteStoredTarget(deps.pool, name);
    return { deleted: name, storeUrl, keptBackups };
  });
}
