import type { AuditActor } from './auditActor.ts';

/**
 * What the audit trail records. Each action is done by one operation in src/operations/,
 * which records it whichever entry point (CLI, API, dashboard, scheduler) asked.
 */
export const auditActions = [
  'sign-in',
  'target.create',
  'target.update',
  'target.delete',
  'run.trigger',
  'run.cancel',
  'run.restore',
  'run.verify',
  'token.create',
  'token.revoke',
  'channel.create',
  'channel.update',
  'channel.delete',
  'prune',
] as const;
export type AuditAction = (typeof auditActions)[number];

/** succeeded; refused by a rule (with its error code); failed for another reason (INTERNAL, CATALOG_UNAVAILABLE…). */
export const auditOutcomes = ['succeeded', 'refused', 'failed'] as const;
export type AuditOutcome = (typeof auditOutcomes)[number];

/**
 * Facts about an action that are never secret: the names of the fields a change touched (not
 * their values), a restore's host, port and database (not its password or user), the id of the
 * run an action made. Values are plain JSON.
 */
export type AuditDetails = Record<string, string | number | boolean | null | string[]>;

export interface AuditEntry {
  id: number;
  at: string;
  actor: AuditActor;
  action: AuditAction;
  subject: string | null;
  outcome: AuditOutcome;
  errorCode: string | null;
  details: AuditDetails;
}

/** An action prefix (`target`) matches all of its actions (`target.create`, `target.update`…). */
export function auditActionsMatching(filter: string): AuditAction[] {
  return auditActions.filter((action) => action === filter || action.startsWith(`${filter}.`));
}

/**
 * Error codes that mean a rule refused the action (the caller asked for something not allowed
 * or not possible), rather than that it broke on the way.
 */
export function auditOutcomeOf(code: string): AuditOutcome {
  return code === 'INTERNAL' || code === 'CATALOG_UNAVAILABLE' ? 'failed' : 'refused';
}
