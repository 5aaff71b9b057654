import { hasRole, type ApiTokenRole } from './roles.ts';
import { isTerminal, type RunStatus } from './runState.ts';

/**
 * What a caller may do with a run or a target right now, and why not, pure: the API sends it
 * with a run and a target (`actions`) so that a client offers only what can succeed, and the
 * routes that act refuse with the same words. The inputs are what the catalog and the server's
 * own configuration say, read without touching a store: a run page is read often.
 */

/** Why an action is not possible: the caller's role, the run's or target's state, or a missing identity. */
export type ActionBlocker = 'role' | 'state' | 'identity';

export type ActionVerdict = { allowed: true } | { allowed: false; blockedBy: ActionBlocker; reason: string };

export interface RunActions {
  cancel: ActionVerdict;
  /** A restore drill on a worker, which decrypts with the identity the server holds. */
  verify: ActionVerdict;
  /** `identityRequired`: the backup is encrypted and the server holds no identity, so the request must bring one. */
  restore: ActionVerdict & { identityRequired: boolean };
  download: ActionVerdict;
}

export interface TargetActions {
  backup: ActionVerdict;
  /** Verify and restore the newest good backup: the run's own verdicts, or "none yet". */
  verifyNewest: ActionVerdict;
  restoreNewest: ActionVerdict & { identityRequired: boolean };
  /** A continuous target: restore it as it was at a point of its window (POST /api/v1/targets/{name}/restore). */
  restorePointInTime: ActionVerdict;
  test: ActionVerdict;
  edit: ActionVerdict;
  pause: ActionVerdict;
  delete: ActionVerdict;
  testNotification: ActionVerdict;
}

export interface ActionRun {
  kind: 'backup' | 'verify';
  status: RunStatus;
  artifact: { files: { name: string }[] } | null;
}

/** The age identities the server holds (BACKSTOP_IDENTITY_FILE), by recipient; `problem` when the setting cannot be used. */
export interface HeldIdentities {
  recipients: string[];
  problem: string | null;
}

/** Every backup writer names an encrypted file `….age` (backup.ts, backupSupabase.ts, storageObjects.ts). */
const ENCRYPTED_SUFFIX = '.age';

export function isEncryptedArtifact(artifact: { files: { name: string }[] }): boolean {
  return artifact.files.some((file) => file.name.endsWith(ENCRYPTED_SUFFIX));
}

const allowed: ActionVerdict = { allowed: true };

function needsRole(role: ApiTokenRole | null, required: ApiTokenRole, what: string): ActionVerdict | null {
  if (role !== null && hasRole(role, required)) return null;
  return { allowed: false, blockedBy: 'role', reason: `${what} needs the ${required} role; you are signed in ${role ? `with the ${role} role` : 'without a role'}.` };
}

function blocked(blockedBy: ActionBlocker, reason: string): ActionVerdict {
  return { allowed: false, blockedBy, reason };
}

/** Null when `run` is a succeeded backup with stored files; otherwise why it cannot be `done`. */
function notAGoodBackup(run: ActionRun, done: string): ActionVerdict | null {
  if (run.kind !== 'backup') return blocked('state', `This is a restore drill; only a backup can be ${done}.`);
  if (run.status !== 'succeeded' || !run.artifact) {
    return blocked('state', `Only a backup that succeeded can be ${done}; this one ${isTerminal(run.status) ? `ended ${run.status.replace('_', ' ')}` : `is ${run.status}`}.`);
  }
  return null;
}

export const noIdentityReason = (held: HeldIdentities): string =>
  `This backup is encrypted, and the server holds no age identity to decrypt it${held.problem ? ` (${held.problem})` : ''}. An administrator can give the server the identity of one of its recipients (the BACKSTOP_IDENTITY_FILE setting of the server and its workers).`;

/**
 * An operator restores through the API only into a database the target lists for operators
 * (`options.restoreTo`); with none listed, every restore of theirs would be refused.
 */
function operatorHasNowhere(role: ApiTokenRole | null, restoreDestinations: number | undefined): ActionVerdict | null {
  if (role !== 'operator' || restoreDestinations === undefined || restoreDestinations > 0) return null;
  return blocked('role', 'An operator restores only into a database this target lists for operators, and it lists none. An admin can add some to the target, or restore it.');
}

/** `restoreDestinations`: how many entries the target's `options.restoreTo` has, when known. */
export function decideRunActions(run: ActionRun, role: ApiTokenRole | null, held: HeldIdentities, restoreDestinations?: number): RunActions {
  const encrypted = run.artifact !== null && isEncryptedArtifact(run.artifact);
  const withoutIdentity = encrypted && held.recipients.length === 0;
  const cancel =
    needsRole(role, 'operator', 'Cancelling a run') ??
    (isTerminal(run.status) ? blocked('state', `The run already ended ${run.status.replace('_', ' ')}.`) : null) ??
    (run.status === 'cancelling' ? blocked('state', 'The run is already being cancelled.') : null) ??
    allowed;
  const verify =
    needsRole(role, 'operator', 'Verifying a backup') ?? notAGoodBackup(run, 'verified') ?? (withoutIdentity ? blocked('identity', noIdentityReason(held)) : null) ?? allowed;
  const restore = needsRole(role, 'operator', 'Restoring a backup') ?? notAGoodBackup(run, 'restored') ?? operatorHasNowhere(role, restoreDestinations) ?? allowed;
  const download = needsRole(role, 'admin', 'Downloading backup files') ?? notAGoodBackup(run, 'downloaded') ?? allowed;
  return { cancel, verify, restore: { ...restore, identityRequired: restore.allowed && withoutIdentity }, download };
}

export interface ActionTarget {
  /** The newest succeeded backup whose files are kept, or null. */
  newestBackup: ActionRun | null;
  /** A run of the target is queued or executing. */
  busy: boolean;
  notificationChannels: number;
  /** Entries of the target's `options.restoreTo`. */
  restoreDestinations: number;
  /** Spans of its restorable window: null for a target that was never continuous. */
  restorableRanges: number | null;
}

export function decideTargetActions(target: ActionTarget, role: ApiTokenRole | null, held: HeldIdentities): TargetActions {
  const noBackup = blocked('state', 'No backup of this target has succeeded yet.');
  const newest = target.newestBackup ? decideRunActions(target.newestBackup, role, held, target.restoreDestinations) : null;
  const admin = (what: string) => needsRole(role, 'admin', what) ?? allowed;
  return {
    backup: needsRole(role, 'operator', 'Backing up') ?? allowed,
    verifyNewest: needsRole(role, 'operator', 'Verifying a backup') ?? newest?.verify ?? noBackup,
    restoreNewest: newest?.restore ?? { ...(needsRole(role, 'operator', 'Restoring a backup') ?? noBackup), identityRequired: false },
    restorePointInTime:
      needsRole(role, 'operator', 'Restoring to a point in time') ??
      (target.restorableRanges === null ? blocked('state', 'This target is not continuous: only its backups can be restored.') : null) ??
      (target.restorableRanges === 0 ? blocked('state', 'Nothing is restorable to a point in time yet: the first base backup has not succeeded.') : null) ??
      operatorHasNowhere(role, target.restoreDestinations) ??
      allowed,
    test: needsRole(role, 'operator', 'Testing the connection') ?? allowed,
    edit: admin('Changing a target'),
    pause: admin('Pausing or resuming the schedule'),
    delete:
      needsRole(role, 'admin', 'Deleting a target') ??
      (target.busy ? blocked('state', 'A run of this target is queued or in progress; wait for it to end, or cancel it, then delete.') : null) ??
      allowed,
    testNotification:
      needsRole(role, 'admin', 'Sending a test notification') ?? (target.notificationChannels === 0 ? blocked('state', 'This target has no notification channel.') : null) ?? allowed,
  };
}
