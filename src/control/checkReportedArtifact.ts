import { BackstopError, describeError } from '../core/errors.ts';
import { MANIFEST_NAME, artifactPrefix, type Manifest } from '../core/manifest.ts';
import { manifestBindsTo } from '../core/manifestBinding.ts';
import type { Artifact } from '../core/artifact.ts';
import type { RunRecord } from '../db/runRecords.ts';
import { readManifest } from '../pipeline/readManifest.ts';
import { openStore } from '../storage/openStore.ts';

/** At most this many problems are named in one refusal; the rest are counted. */
const SHOWN_PROBLEMS = 5;

/** Where a backup run writes: its target's store, under the prefix its target, run and attempt imply. */
export function expectedArtifactPrefix(run: Pick<RunRecord, 'id' | 'attempt' | 'targetName' | 'createdAt'>): string {
  return artifactPrefix(run.targetName, run.createdAt, run.id, run.attempt);
}

/**
 * The rule a backup's report must pass before the catalog records it `succeeded`, for every
 * runner alike (a worker next to the catalog or a CI job with a runner token): the server
 * decides where the artifact is, and believes nothing about it that it cannot read back.
 *
 * - the artifact is in the target's store (the store the server opens, never one the report
 *   names) under the prefix derived from the target, run and attempt;
 * - the manifest read back from there has the digest and size reported, and binds to this
 *   run: its run id, attempt and target, at the prefix those imply (`manifestBindsTo`);
 * - the files the manifest lists are the ones reported (names, sizes, SHA-256), and each is in
 *   the store with that size (one listing of the prefix: no file is read).
 *
 * Answers the manifest as read back; throws ARTIFACT_REJECTED saying what is wrong. The store being unreadable from here is a
 * refusal too: a backup the server cannot read back is one it could neither prune, drill nor
 * restore, and a report that keeps the run running until its deadline would be worse.
 */
export async function checkReportedArtifact(
  run: Pick<RunRecord, 'id' | 'attempt' | 'targetId' | 'targetName' | 'createdAt'>,
  target: { storeUrl: string },
  reported: Artifact,
): Promise<Manifest> {
  const prefix = expectedArtifactPrefix(run);
  const rejected = (reason: string, next = 'Check what runs this backup (its runner token may be in the wrong hands), then trigger a new backup.') =>
    new BackstopError(
      'ARTIFACT_REJECTED',
      `The artifact reported for run ${run.id} (attempt ${run.attempt}) was refused: ${reason}. A runner may report only what it wrote in its target's store under ${prefix}. ${next}`,
    );

  let store;
  try {
    store = await openStore(target.storeUrl);
  } catch (error) {
    throw rejected(
      `the server cannot open the target's store (${describeError(error).message})`,
      "Fix the target's store URL or the server's store settings, then trigger a new backup.",
    );
  }
  try {
    if (reported.storeUrl !== store.url) throw rejected(`it names the store ${reported.storeUrl}, but the target stores into ${store.url}`);
    if (reported.prefix !== prefix) throw rejected(`it names the prefix ${reported.prefix}, not ${prefix}`);
    if (reported.manifest.name !== MANIFEST_NAME) throw rejected(`its manifest is named "${reported.manifest.name}", not "${MANIFEST_NAME}"`);

    let read;
    try {
      read = await readManifest(store, prefix);
    } catch (error) {
      throw rejected(
        `its manifest could not be read back from ${store.url}/${prefix} (${describeError(error).message})`,
        "The server must be able to read every target's store (it checks each backup, prunes and drills): check its access to the store, then trigger a new backup.",
      );
    }
    if (read.sha256 !== reported.manifest.sha256 || read.size !== reported.manifest.size) {
      throw rejected(
        `the manifest in the store (${read.size} bytes, SHA-256 ${read.sha256}) is not the one reported (${reported.manifest.size} bytes, SHA-256 ${reported.manifest.sha256})`,
      );
    }
    const binding = manifestBindsTo(read.manifest, { runId: run.id, attempt: run.attempt, targetName: run.targetName, targetId: run.targetId, prefix });
    if (!binding.bound) throw rejected(binding.reason);

    const problems: string[] = [];
    const reportedFiles = new Map(reported.files.map((file) => [file.name, file]));
    if (reportedFiles.size !== reported.files.length) problems.push('a file is reported twice');
    for (const file of read.manifest.files) {
      const other = reportedFiles.get(file.name);
      if (!other) problems.push(`${file.name} is in the manifest but not reported`);
      else if (other.size !== file.size || other.sha256 !== file.sha256) {
        problems.push(`${file.name} is reported as ${other.size} bytes with SHA-256 ${other.sha256}, the manifest says ${file.size} bytes with ${file.sha256}`);
      }
      reportedFiles.delete(file.name);
    }
    for (const name of reportedFiles.keys()) problems.push(`${name} is reported but not in the manifest`);
    if (problems.length === 0) {
      // One listing of the prefix rather than a HEAD per file: a Supabase backup with Storage
      // objects has tens of thousands of files, and a listing answers a thousand at a time.
      const stored = new Map<string, number>();
      try {
        for await (const object of store.list(prefix)) stored.set(object.key.slice(prefix.length), object.size);
      } catch (error) {
        throw rejected(
          `its files could not be listed in ${store.url}/${prefix} (${describeError(error).message})`,
          "The server must be able to read every target's store: check its access to the store, then trigger a new backup.",
        );
      }
      for (const file of read.manifest.files) {
        const size = stored.get(file.name);
        if (size === undefined) problems.push(`${file.name} is not in the store`);
        else if (size !== file.size) problems.push(`${file.name} is ${size} bytes in the store, the manifest says ${file.size}`);
      }
    }
    if (problems.length > 0) {
      const more = problems.length > SHOWN_PROBLEMS ? ` and ${problems.length - SHOWN_PROBLEMS} more` : '';
      throw rejected(`${problems.slice(0, SHOWN_PROBLEMS).join('; ')}${more}`);
    }
    return read.manifest;
  } finally {
    await store.close();
  }
}
