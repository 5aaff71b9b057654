import { BackstopError } from '../core/errors.ts';
import { manifestBindsTo } from '../core/manifestBinding.ts';
import type { Artifact } from '../core/artifact.ts';
import type { Store } from '../storage/store.ts';
import { readManifest } from './readManifest.ts';

/**
 * The manifest of a backup the catalog lists, read from the store its artifact names, for a
 * restore or a drill. Refused unless it is the manifest the catalog recorded (same SHA-256:
 * ARTIFACT_CORRUPT otherwise) and it binds to this very run (`manifestBindsTo`:
 * ARTIFACT_REJECTED otherwise). A catalog row is not proof of anything on its own: one
 * written before finalize checked artifacts, or altered since, may point at another target's
 * backup or at files nobody backed up.
 */
export async function readRunManifest(store: Store, run: { id: string; attempt: number; targetId: string; targetName: string; artifact: Artifact }): ReturnType<typeof readManifest> {
  const read = await readManifest(store, run.artifact.prefix);
  if (read.sha256 !== run.artifact.manifest.sha256) {
    throw new BackstopError('ARTIFACT_CORRUPT', `The manifest of run ${run.id} no longer matches the checksum recorded in the catalog; the artifact was altered.`);
  }
  const binding = manifestBindsTo(read.manifest, {
    runId: run.id,
    attempt: run.attempt,
    targetName: run.targetName,
    targetId: run.targetId,
    prefix: run.artifact.prefix,
  });
  if (!binding.bound) {
    throw new BackstopError(
      'ARTIFACT_REJECTED',
      `The catalog's record of backup ${run.id} (target "${run.targetName}", attempt ${run.attempt}) does not point at that backup: ${binding.reason}. ` +
        'Nothing was restored. If the target was renamed since this backup was taken, restore it from its manifest URL (`backstop restore <store>/<prefix>/manifest.json`); otherwise the record was altered: check who can write to the catalog.',
    );
  }
  return read;
}
