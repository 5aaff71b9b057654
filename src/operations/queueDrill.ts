import type { AuditActor } from '../core/auditActor.ts';
import type { Config } from '../core/config.ts';
import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import { createRun, type RunRecord } from '../db/runRecords.ts';
import { readRunManifest } from '../pipeline/readRunManifest.ts';
import { openStore } from '../storage/openStore.ts';
import { findSucceededBackup } from './findSucceededBackup.ts';
import { audited } from './recordAudit.ts';
import { assertDrillCanDecrypt } from './runCapabilities.ts';

export interface QueuedDrill {
  run: RunRecord;
  /** Whether the backup is encrypted, when its manifest was read before queueing; null otherwise. */
  encrypted: boolean | null;
}

/**
 * Queues a restore drill (a run of kind `verify`) of a succeeded backup. With
 * `requireChecksums`, the backup must have recorded per-table content checksums, read from its
 * own manifest: a drill asked to compare them must not quietly compare row counts only. With
 * `readManifest`, the manifest is read anyway, to say whether the backup is encrypted. An
 * encrypted backup the configured identity cannot decrypt is refused (IDENTITY_REQUIRED).
 */
export async function queueDrill(
  db: Queryable,
  config: Pick<Config, 'runDeadlineMs' | 'identityFile'>,
  input: { runId: string; requireChecksums?: boolean; readManifest?: boolean },
  origin: { trigger: string; actor: AuditActor },
): Promise<QueuedDrill> {
  return audited(db, origin.actor, { action: 'run.verify', subject: input.runId, detailsOf: ({ run }) => ({ runId: run.id }) }, () => queue(db, config, input, origin));
}

async function queue(
  db: Queryable,
  config: Pick<Config, 'runDeadlineMs' | 'identityFile'>,
  input: { runId: string; requireChecksums?: boolean; readManifest?: boolean },
  origin: { trigger: string },
): Promise<QueuedDrill> {
  const subject = await findSucceededBackup(db, input.runId, 'verified');
  let encrypted: boolean | null = null;
  if (input.requireChecksums || input.readManifest) {
    const store = await openStore(subject.artifact.storeUrl);
    try {
      const { manifest } = await readRunManifest(store, subject);
      encrypted = manifest.encryption !== null;
      if (input.requireChecksums && manifest.tables.some((table) => table.checksum === undefined)) {
        throw new BackstopError('INVALID_INPUT', `Backup ${subject.id} recorded no per-table checksums. Enable them on the target for future backups, or verify without checksums.`);
      }
    } finally {
      await store.close();
    }
  }
  // A drill that could not decrypt is refused before it is recorded: a failed drill would mark
  // the target failing for want of a key.
  await assertDrillCanDecrypt(config, subject);
  const run = await createRun(db, {
    targetId: subject.targetId,
    trigger: origin.trigger,
    runDeadlineMs: config.runDeadlineMs,
    kind: 'verify',
    subjectRunId: subject.id,
  });
  return { run, encrypted };
}
