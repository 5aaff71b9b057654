import { BackstopError, isBackstopError, type FieldProblem } from '../../core/errors.ts';
import { describeProblems, parseInput } from '../../core/inputProblems.ts';
import { claimRunById } from '../../db/runLeases.ts';
import type { AuditActor } from '../../core/auditActor.ts';
import { createRun, type ClaimedRun } from '../../db/runRecords.ts';
import { deleteTargetById, findTargetWithSecret, type TargetRecord, type TargetWithSecret } from '../../db/targets.ts';
import { defaultCompression, parseCompression } from '../../pipeline/compression.ts';
import { audited } from '../recordAudit.ts';
import { storeNewTarget } from './addTarget.ts';
import type { TargetDeps } from './targetDeps.ts';
import { targetCreateSchema, type TargetCreate, type TargetCreateInput } from './targetInput.ts';

/**
 * `backstop backup DATABASE_URL`: a backup now, of a target that may not exist yet. A new
 * target is validated and checked exactly as `addTarget` does before it is stored; an
 * existing one is used as it is, and a setting given for it that differs from the stored one
 * is refused (TargetSettingsDiffer) rather than silently ignored or silently applied. When
 * the backup of a target this made fails, `discardOneShotTarget` removes the target again, so
 * a failed one-shot backup leaves the target list as it was.
 */

/** A setting given for an existing target that is not what the target has. */
export interface SettingDifference {
  field: string;
  stored: string;
  given: string;
  /** The value given, as the input had it (to say how to change the target to it). */
  value: string | string[] | boolean;
}

/** Refused: the settings given are not the existing target's (change them with an update, or use another name). */
export class TargetSettingsDiffer extends BackstopError {
  readonly target: string;
  readonly differences: readonly SettingDifference[];
  constructor(target: string, differences: SettingDifference[]) {
    const fields: FieldProblem[] = differences.map((difference) => ({
      field: difference.field,
      message: `the target "${target}" has ${difference.stored}, not ${difference.given}`,
    }));
    super('INVALID_INPUT', describeProblems(fields), { fields });
    this.target = target;
    this.differences = differences;
  }
}

function compressionText(text: string | undefined): string {
  const { algorithm, level } = text === undefined ? defaultCompression : parseCompression(text);
  return level === null ? algorithm : `${algorithm}:${level}`;
}

/** What the caller gave that the existing target does not have (only what was given counts). */
export function settingDifferences(existing: TargetRecord, wanted: TargetCreate): SettingDifference[] {
  const differences: SettingDifference[] = [];
  const options = wanted.options ?? {};
  if (wanted.storeUrl !== undefined && wanted.storeUrl !== existing.storeUrl) {
    differences.push({ field: 'storeUrl', stored: `its backups at ${existing.storeUrl}`, given: wanted.storeUrl, value: wanted.storeUrl });
  }
  if (options.compression !== undefined && compressionText(options.compression) !== compressionText(existing.options.compression)) {
    differences.push({
      field: 'options.compression',
      stored: `compression ${compressionText(existing.options.compression)}`,
      given: compressionText(options.compression),
      value: options.compression,
    });
  }
  const storedRecipients = existing.options.encryptTo ?? [];
  if (options.encryptTo !== undefined && options.encryptTo.length > 0 && [...options.encryptTo].sort().join() !== [...storedRecipients].sort().join()) {
    differences.push({
      field: 'options.encryptTo',
      stored: storedRecipients.length === 0 ? 'no encryption' : `encryption to ${storedRecipients.join(', ')}`,
      given: `encryption to ${options.encryptTo.join(', ')}`,
      value: options.encryptTo,
    });
  }
  const storedProfile = existing.options.profile ?? 'default';
  if (options.profile !== undefined && options.profile !== storedProfile) {
    differences.push({ field: 'options.profile', stored: `the ${storedProfile} profile`, given: `the ${options.profile} profile`, value: options.profile });
  }
  if (options.withStorage === true && existing.options.withStorage !== true) {
    differences.push({ field: 'options.withStorage', stored: 'backups without Storage objects', given: 'with Storage objects', value: true });
  }
  return differences;
}

export interface OneShotTarget {
  target: TargetRecord;
  /** Made by this call: to be discarded if its backup fails. */
  created: boolean;
}

/** The target to back up now: the existing one of that name (same database, same settings), or a new one, checked and stored. */
export async function ensureOneShotTarget(deps: TargetDeps, input: TargetCreateInput, actor: AuditActor): Promise<OneShotTarget> {
  const wanted = parseInput(targetCreateSchema, input);
  // Twice at most: a target created by another process between the read and the insert is
  // then read as an existing one.
  for (let attempt = 1; ; attempt++) {
    const existing: TargetWithSecret | null = await findTargetWithSecret(deps.pool, wanted.name);
    if (existing) {
      if (existing.databaseUrl !== wanted.databaseUrl) {
        throw new BackstopError('TARGET_EXISTS', `Target "${wanted.name}" already exists for another database. Back this one up under another name.`, {
          field: 'name',
        });
      }
      const differences = settingDifferences(existing, wanted);
      if (differences.length > 0) throw new TargetSettingsDiffer(wanted.name, differences);
      const { databaseUrl: _secret, notificationChannels: _channels, ...target } = existing;
      return { target, created: false };
    }
    try {
      const fields = Object.keys(input)
        .filter((key) => key !== 'checks')
        .sort();
      const target = await audited(deps.pool, actor, { action: 'target.create', subject: wanted.name, details: { fields, oneShot: true } }, () => storeNewTarget(deps, wanted));
      return { target, created: true };
    } catch (error) {
      // Registered by another process between the read and the insert: use it as an existing one.
      if (!isBackstopError(error, 'TARGET_EXISTS') || attempt >= 2) throw error;
    }
  }
}

/** Queues a backup of the target and claims it for this process at once. */
export async function claimOneShotRun(
  deps: Pick<TargetDeps, 'pool'>,
  target: { id: string; name: string },
  settings: { runDeadlineMs: number; leaseTtlMs: number; claimedBy: string },
  actor: AuditActor,
): Promise<ClaimedRun> {
  const run = await audited(deps.pool, actor, { action: 'run.trigger', subject: target.name, detailsOf: (made) => ({ runId: made.id, oneShot: true }) }, () =>
    createRun(deps.pool, { targetId: target.id, trigger: 'cli', runDeadlineMs: settings.runDeadlineMs }),
  );
  return claimRunById(deps.pool, run.id, { leaseTtlMs: settings.leaseTtlMs, claimedBy: settings.claimedBy });
}

/**
 * Removes a target a one-shot backup made, with its runs, once that backup failed: the target
 * list is as before the command. Returns false when it must stay (another run of it is active:
 * someone else uses it already).
 */
export async function discardOneShotTarget(deps: Pick<TargetDeps, 'pool'>, target: { id: string; name: string }, actor: AuditActor): Promise<boolean> {
  return audited(deps.pool, actor, { action: 'target.delete', subject: target.name, details: { reason: 'its first backup did not succeed' } }, () =>
    deleteTargetById(deps.pool, target.id),
  );
}
