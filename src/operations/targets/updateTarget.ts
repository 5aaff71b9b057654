import type { AuditActor } from '../../core/auditActor.ts';
import type { AuditDetails } from '../../core/auditEntry.ts';
import { BackstopError } from '../../core/errors.ts';
import { parseInput } from '../../core/inputProblems.ts';
import { assertTargetName } from '../../core/targetName.ts';
import { withTransaction } from '../../db/pool.ts';
import { findTargetWithSecret, getTarget, lockTargetForUpdate, targetNotFound, updateTarget as storeTargetUpdate, type TargetUpdate } from '../../db/targets.ts';
import { audited, auditSubject } from '../recordAudit.ts';
import { changedTargetFields } from './changedTargetFields.ts';
import {
  assertContinuityPossible,
  assertDatabaseKeepsContinuity,
  checkContinuity,
  disableContinuity,
  enableContinuity,
  replanContinuity,
  type ContinuityPlan,
  type TargetChange,
} from './continuity.ts';
import { resolveServerUrl } from './serverTarget.ts';
import { assertTargetChecks } from './targetChecks.ts';
import type { TargetDeps } from './targetDeps.ts';
import { targetUpdateSchema, type TargetUpdateFields, type TargetUpdateInput } from './targetInput.ts';
import { assertChannelsAllowed, mergeNotifications } from './targetNotifications.ts';

/**
 * Changes any field of a target: its name, database URL, store, options, retries, schedule,
 * pause, retention, drills, notifications or executor. A new database URL or store is checked
 * as `addTarget` checks them (unless `checks: false`), before anything is stored. Runs already
 * queued keep the settings they were created with. The audit trail records which fields
 * changed, never their values.
 */
export async function updateTarget(deps: TargetDeps, name: string, input: TargetUpdateInput | unknown, actor: AuditActor): Promise<TargetChange> {
  const facts: AuditDetails = {};
  return audited(deps.pool, actor, { action: 'target.update', subject: auditSubject(name), detailsOf: () => facts }, () => changeTarget(deps, name, input, facts));
}

async function changeTarget(deps: TargetDeps, name: string, input: TargetUpdateInput | unknown, facts: AuditDetails): Promise<TargetChange> {
  assertTargetName(name, 'target');
  const parsed = parseInput(targetUpdateSchema, input);
  const current = await findTargetWithSecret(deps.pool, name);
  if (!current) throw targetNotFound(name);
  const fields = resolveServerUrl(parsed, current.options);
  const renamed = fields.name !== undefined && fields.name !== name;
  if (renamed && (await findTargetWithSecret(deps.pool, fields.name!))) {
    throw new BackstopError('TARGET_EXISTS', `A target named "${fields.name}" already exists. Pick another name.`, { field: 'name' });
  }
  // Said before the checks; merged again under the row lock below, against the channels then.
  if (fields.notifications !== undefined) mergeNotifications(fields.notifications, current.notificationChannels);
  await assertChannelsAllowed(deps.pool, fields.notifications ?? [], fields.pingUrl);
  assertDatabaseKeepsContinuity({ name, databaseUrl: current.databaseUrl, continuous: current.continuous !== null }, fields);
  if (fields.continuous) assertContinuityPossible({ databaseUrl: fields.databaseUrl ?? current.databaseUrl, profile: (fields.options ?? current.options).profile });
  const databaseChanged = fields.databaseUrl !== undefined && fields.databaseUrl !== current.databaseUrl;
  const storeChanged = fields.storeUrl !== undefined && fields.storeUrl !== current.storeUrl;
  // Outside the row lock: a check may take seconds.
  await assertTargetChecks(
    {
      name: fields.name ?? name,
      databaseUrl: fields.databaseUrl ?? current.databaseUrl,
      storeUrl: fields.storeUrl ?? current.storeUrl,
      profile: (fields.options ?? current.options).profile,
      github: Boolean(fields.executor === undefined ? current.executor : fields.executor),
    },
    { pgTools: deps.config.pgTools },
    { database: databaseChanged, store: storeChanged, reachability: fields.checks !== false },
  );
  // Continuity is refused, with its fixes, before anything is changed.
  const databaseUrl = fields.databaseUrl ?? current.databaseUrl;
  const { continuous } = fields;
  let planned: ContinuityPlan | null = null;
  if (continuous) {
    const tables = continuous.tables !== undefined ? continuous.tables : (current.continuous?.tables ?? null);
    planned = await checkContinuity({ id: current.id, databaseUrl, profile: (fields.options ?? current.options).profile, continuous: current.continuous !== null }, tables);
  }
  // Read-modify-write under the row lock: notification channels keep their write-only URLs
  // and secrets, which only the stored row knows.
  const updated = await withTransaction(deps.pool, async (client) => {
    const locked = await lockTargetForUpdate(client, name);
    const update = updateFrom(fields, locked.notificationChannels);
    facts.changed = changedTargetFields(locked, update);
    if (renamed) facts.renamedTo = fields.name!;
    return storeTargetUpdate(client, name, update);
  });
  if (continuous === undefined || (continuous === null && !current.continuous)) return updated;
  facts.changed = [...(facts.changed as string[]), 'continuous'];
  const source = { id: current.id, databaseUrl };
  let change: Omit<TargetChange, keyof typeof updated> = {};
  // The slot and publication are in the database continuity was turned on in, whatever the new URL.
  if (continuous === null) change = await disableContinuity(deps, { id: current.id, databaseUrl: current.databaseUrl }, 'continuity turned off (target update)');
  else {
    // A continuous target whose slot is gone (dropped on the source) starts again from a new one.
    if (current.continuous && planned!.slotExists) await replanContinuity(deps, source, planned!, continuous);
    else change = await enableContinuity(deps, source, planned!, continuous);
    change = { ...change, publishedTables: planned!.plan.published.length, unprotectedTables: planned!.plan.unprotected };
  }
  return { ...(await getTarget(deps.pool, updated.name)), ...change };
}

function updateFrom(fields: Omit<TargetUpdateFields, 'serverUrl'>, existingChannels: Parameters<typeof mergeNotifications>[1]): TargetUpdate {
  const { checks: _checks, notifications, executor, continuous: _continuous, ...rest } = fields;
  const update: TargetUpdate = { ...rest };
  if (notifications !== undefined) update.notifications = mergeNotifications(notifications, existingChannels);
  if (executor !== undefined) update.executor = executor === null ? null : { ...executor, ref: executor.ref ?? 'main' };
  return update;
}
