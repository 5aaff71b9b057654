import { randomUUID } from 'node:crypto';
import type { AuditActor } from '../../core/auditActor.ts';
import { BackstopError } from '../../core/errors.ts';
import { parseInput } from '../../core/inputProblems.ts';
import { createTarget, deleteTargetById, findTargetWithSecret, getTarget, type NewTarget } from '../../db/targets.ts';
import { absoluteStoreUrl } from '../../storage/openStore.ts';
import { audited, auditSubject, givenFieldNames } from '../recordAudit.ts';
import { slotNameFor } from '../../core/changeSegment.ts';
import { assertContinuityPossible, checkContinuity, enableContinuity, type TargetChange } from './continuity.ts';
import { resolveServerUrl } from './serverTarget.ts';
import { assertTargetChecks } from './targetChecks.ts';
import type { TargetDeps } from './targetDeps.ts';
import { targetCreateSchema, type TargetCreate, type TargetCreateInput } from './targetInput.ts';
import { assertChannelsAllowed, mergeNotifications } from './targetNotifications.ts';

/**
 * Registers a target, after every check (see targetChecks.ts) unless `checks: false` skips
 * those that reach the database and the store. Nothing is stored when any fails. The audit
 * trail records the target's name and which fields were given, never their values.
 */
export async function addTarget(deps: TargetDeps, input: TargetCreateInput | unknown, actor: AuditActor): Promise<TargetChange> {
  const subject = auditSubject((input as { name?: unknown } | null)?.name);
  const fields = givenFieldNames(input, ['checks']);
  return audited(deps.pool, actor, { action: 'target.create', subject, details: { fields } }, async () => storeNewTarget(deps, parseInput(targetCreateSchema, input)));
}

/** The part of `addTarget` after validation (the one-shot backup validates first, then decides). */
export async function storeNewTarget(deps: TargetDeps, input: TargetCreate): Promise<TargetChange> {
  const resolved = resolveServerUrl(input);
  const target = { ...resolved, databaseUrl: resolved.databaseUrl! };
  // A taken name is said before checks that may take seconds (the insert still decides a race).
  if (await findTargetWithSecret(deps.pool, target.name)) {
    throw new BackstopError('TARGET_EXISTS', `A target named "${target.name}" already exists. Pick another name or change that one.`, { field: 'name' });
  }
  const storeUrl = target.storeUrl ?? absoluteStoreUrl(deps.config.defaultStoreUrl);
  const notifications = mergeNotifications(target.notifications ?? [], []);
  await assertChannelsAllowed(deps.pool, target.notifications ?? [], target.pingUrl);
  if (target.continuous) assertContinuityPossible({ databaseUrl: target.databaseUrl, profile: target.options?.profile });
  await assertTargetChecks(
    { name: target.name, databaseUrl: target.databaseUrl, storeUrl, profile: target.options?.profile, github: Boolean(target.executor) },
    { pgTools: deps.config.pgTools },
    { database: true, store: true, reachability: target.checks !== false },
  );
  if (!target.continuous) return createTarget(deps.pool, newTargetFrom(target, storeUrl, notifications));
  // Continuity: the source is read and refused with its fixes before anything is stored. The
  // id is chosen here because the slot and publication are named after it.
  const id = randomUUID();
  const { tables = null, ...settings } = target.continuous;
  const planned = await checkContinuity({ id, databaseUrl: target.databaseUrl, profile: target.options?.profile, continuous: false, slot: slotNameFor(id) }, tables);
  const created = await createTarget(deps.pool, { ...newTargetFrom(target, storeUrl, notifications), id });
  try {
    const { baseRunId } = await enableContinuity(deps, { id, databaseUrl: target.databaseUrl }, planned, { tables, ...settings });
    return { ...(await getTarget(deps.pool, created.name)), baseRunId, unprotectedTables: planned.plan.unprotected, publishedTables: planned.plan.published.length };
  } catch (error) {
    await deleteTargetById(deps.pool, id).catch(() => {});
    throw error;
  }
}

function newTargetFrom(target: Omit<TargetCreate, 'serverUrl'> & { databaseUrl: string }, storeUrl: string, notifications: NewTarget['notifications']): NewTarget {
  return {
    name: target.name,
    databaseUrl: target.databaseUrl,
    storeUrl,
    options: target.options ?? {},
    exclusive: target.exclusive,
    maxAttempts: target.maxAttempts,
    schedule: target.schedule,
    retention: target.retention,
    verification: target.verification,
    notifications,
    executor: target.executor ? { ...target.executor, ref: target.executor.ref ?? 'main' } : target.executor,
    paused: target.paused,
    maxBackupAge: target.maxBackupAge,
    pingUrl: target.pingUrl,
  };
}
