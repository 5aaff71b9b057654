import type { AuditActor } from '../../core/auditActor.ts';
import type { TargetRecord } from '../../db/targets.ts';
import type { TargetDeps } from './targetDeps.ts';
import { updateTarget } from './updateTarget.ts';

/** Stops a target's scheduled backups and scheduled drills; manual runs still work. */
export function pauseTarget(deps: TargetDeps, name: string, actor: AuditActor): Promise<TargetRecord> {
  return updateTarget(deps, name, { paused: true }, actor);
}

/**
 * Starts a paused target's schedule again from now: slots that passed while it was paused are
 * settled, not caught up (migration 012), so the first scheduled run is the next slot.
 */
export function resumeTarget(deps: TargetDeps, name: string, actor: AuditActor): Promise<TargetRecord> {
  return updateTarget(deps, name, { paused: false }, actor);
}
