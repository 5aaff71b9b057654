import type { AuditActor } from '../../core/auditActor.ts';
import type { AuditDetails } from '../../core/auditEntry.ts';
import { BackstopError } from '../../core/errors.ts';
import { parseInput } from '../../core/inputProblems.ts';
import { assertTargetName } from '../../core/targetName.ts';
import { withTransaction } from '../../db/pool.ts';
import { findTargetWithSecret, lockTargetForUpdate, targetNotFound, updateTarget as storeTargetUpdate, type TargetRecord, type TargetUpdate } from '../../db/targets.ts';
import { audited, auditSubject } from '../recordAudit.ts';
import { changedTargetFields } from './changedTargetFields.ts';
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
export async function updateTarget(deps: TargetDeps, name: string, input: TargetUpdateInput | unknown, actor: AuditActor): Promise<TargetRecord> {
  const facts: AuditDetails = {};
  return audited(deps.pool, actor, { action: 'target.update', subject: auditSubject(name), detailsOf: () => facts }, () => changeTarget(deps, name, input, facts));
}

async function changeTarget(deps: TargetDeps, name: string, input: TargetUpdateInput | unknown, facts: AuditDetails): Promise<TargetRecord> {
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
  // Read-modify-write under the row lock: notification channels keep their write-only URLs
  // and secrets, which only the stored row knows.
  return withTransaction(deps.pool, async (client) => {
    const locked = await lockTargetForUpdate(client, name);
    const update = updateFrom(fields, locked.notificationChannels);
    facts.changed = changedTargetFields(locked, update);
    if (renamed) facts.renamedTo = fields.name!;
    return storeTargetUpdate(client, name, update);
  });
}

function updateFrom(fields: Omit<TargetUpdateFields, 'serverUrl'>, existingChannels: Parameters<typeof mergeNotifications>[1]): TargetUpdate {
  const { checks: _checks, notifications, executor, ...rest } = fields;
  const update: TargetUpdate = { ...rest };
  if (notifications !== undefined) update.notifications = mergeNotifications(notifications, existingChannels);
  if (executor !== undefined) update.executor = executor === null ? null : { ...executor, ref: executor.ref ?? 'main' };
  return update;
}
