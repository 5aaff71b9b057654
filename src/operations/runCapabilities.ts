import { decideRunActions, decideTargetActions, isEncryptedArtifact, noIdentityReason, type RunActions, type TargetActions } from '../core/actions.ts';
import { BackstopError } from '../core/errors.ts';
import type { ApiTokenRole } from '../core/roles.ts';
import type { Config } from '../core/config.ts';
import type { Queryable } from '../db/pool.ts';
import type { Artifact } from '../core/artifact.ts';
import type { RunRecord } from '../db/runRecords.ts';
import { getTargetRunFacts } from '../db/targetRunFacts.ts';
import { getTargetWithSecret, type TargetRecord } from '../db/targets.ts';
import { parseIdentities, type AgeIdentity } from '../pipeline/age.ts';
import { readRunManifest } from '../pipeline/readRunManifest.ts';
import { openStore } from '../storage/openStore.ts';
import { readServerIdentities } from './heldIdentities.ts';

/**
 * What a caller may do with a run or a target (src/core/actions.ts), from the catalog and the
 * server's identities, and the checks the acting routes make before they start anything: the
 * dashboard offers what these allow, and the API refuses the rest with the same reasons.
 */

type GoodBackup = Pick<RunRecord, 'id' | 'attempt' | 'targetId' | 'targetName'> & { artifact: Artifact };

export async function runActionsFor(db: Queryable, config: Pick<Config, 'identityFile'>, run: RunRecord, role: ApiTokenRole | null): Promise<RunActions> {
  // Only an operator's restore depends on the target's settings: nobody else pays the query.
  const destinations = role === 'operator' && run.kind === 'backup' && run.status === 'succeeded' ? restoreDestinationsOf(await getTargetWithSecret(db, run.targetId)) : undefined;
  return decideRunActions(run, role, await readServerIdentities(config.identityFile), destinations);
}

function restoreDestinationsOf(target: Pick<TargetRecord, 'options'>): number {
  return Array.isArray(target.options.restoreTo) ? target.options.restoreTo.length : 0;
}

export async function targetActionsFor(
  db: Queryable,
  config: Pick<Config, 'identityFile'>,
  target: TargetRecord & { continuity?: { window: { ranges: unknown[] } } | null },
  role: ApiTokenRole | null,
): Promise<TargetActions> {
  const facts = await getTargetRunFacts(db, target.id);
  return decideTargetActions(
    {
      newestBackup: facts.newestBackup,
      busy: facts.busy,
      notificationChannels: target.notifications.length,
      restoreDestinations: restoreDestinationsOf(target),
      restorableRanges: target.continuity ? target.continuity.window.ranges.length : null,
    },
    role,
    await readServerIdentities(config.identityFile),
  );
}

/** The recipients an encrypted backup was written to, from its manifest (checked to be this run's own). */
async function recipientsOf(backup: GoodBackup): Promise<string[]> {
  const store = await openStore(backup.artifact.storeUrl);
  try {
    const { manifest } = await readRunManifest(store, backup);
    return manifest.encryption?.recipients ?? [];
  } finally {
    await store.close();
  }
}

/**
 * Before a drill of `backup` is queued: a drill of an encrypted backup decrypts with the
 * identity the server (and its workers) hold; without one that fits it would fail at
 * pg_restore and mark the target failing for want of a key. Refused (409 IDENTITY_REQUIRED)
 * instead, and nothing is queued.
 */
export async function assertDrillCanDecrypt(config: Pick<Config, 'identityFile'>, backup: GoodBackup): Promise<void> {
  if (!isEncryptedArtifact(backup.artifact)) return;
  const held = await readServerIdentities(config.identityFile);
  if (held.recipients.length === 0) throw new BackstopError('IDENTITY_REQUIRED', noIdentityReason(held));
  const recipients = await recipientsOf(backup);
  if (recipients.length > 0 && !held.recipients.some((recipient) => recipients.includes(recipient))) {
    throw new BackstopError(
      'IDENTITY_REQUIRED',
      `This backup is encrypted to ${recipients.join(', ')}, and the server's identity file holds keys for ${held.recipients.join(', ')} only. An administrator can give the server the identity of one of the backup's recipients.`,
    );
  }
}

/**
 * The identities an API restore of `backup` decrypts with: the ones sent with the request,
 * else the server's. Checked against the backup's recipients before the restore starts, so a
 * missing or wrong key is the answer (field `identity`) rather than a failed restore.
 */
export async function restoreIdentities(config: Pick<Config, 'identityFile'>, backup: GoodBackup, given: string | undefined): Promise<AgeIdentity[] | undefined> {
  let identities: AgeIdentity[] | undefined;
  if (given !== undefined) {
    try {
      identities = parseIdentities(given);
    } catch {
      throw new BackstopError('INVALID_INPUT', 'This is not an age identity: paste the lines that start with AGE-SECRET-KEY-1.', { field: 'identity' });
    }
  }
  if (!isEncryptedArtifact(backup.artifact)) return identities;
  const held = await readServerIdentities(config.identityFile);
  identities ??= held.identities.length > 0 ? held.identities : undefined;
  if (!identities) {
    throw new BackstopError('IDENTITY_REQUIRED', `${noIdentityReason(held)} Or paste the identity with the restore.`, { field: 'identity' });
  }
  const recipients = await recipientsOf(backup);
  if (recipients.length > 0 && !identities.some((identity) => recipients.includes(identity.recipient))) {
    throw new BackstopError(
      given !== undefined ? 'INVALID_INPUT' : 'IDENTITY_REQUIRED',
      `${given !== undefined ? 'This identity does' : "The server's identity does"} not decrypt this backup: it is encrypted to ${recipients.join(', ')}. Paste the identity of one of those recipients.`,
      { field: 'identity' },
    );
  }
  return identities;
}
