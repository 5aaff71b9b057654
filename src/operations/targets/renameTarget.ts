import type { AuditActor } from '../../core/auditActor.ts';
import type { TargetRecord } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';
import { updateTarget } from './updateTarget.ts';

/**
 * Gives a target another name; its runs and backups follow (they refer to its id). Backups
 * taken from now on go under the new name's folder in the store; those already stored stay
 * where they are and remain restorable.
 */
export function renameTarget(deps: TargetDeps, name: string, newName: string, actor: AuditActor): Promise<TargetRecord> {
  return updateTarget(deps, name, { name: newName }, actor);
}
