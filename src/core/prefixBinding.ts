import { artifactPrefix, type Manifest } from './manifest.ts';

/**
 * Does what a store or a catalog row says about a backup bind it to the place Backstop itself
 * would have put it? Garbage collection and retention delete only on that evidence: a manifest
 * copied into another run's folder, or a row whose artifact points anywhere else (a forged
 * `file:///victim` + prefix), must never make prune delete what it names.
 *
 * (Finalize has its own, stricter check of a manifest against the run it finishes; the two
 * agree on the fields below.)
 */

/** Null when a manifest read from `prefix` of `target`'s layout is that prefix's own; else the problem. */
export function manifestBindsToPrefix(
  target: string,
  prefix: string,
  manifest: Pick<Manifest, 'runId' | 'attempt' | 'target' | 'createdAt'>,
): string | null {
  if (manifest.target !== target) return `its manifest names target "${manifest.target}", not "${target}"`;
  const expected = artifactPrefix(manifest.target, manifest.createdAt, manifest.runId, manifest.attempt);
  if (expected !== prefix) return `its manifest names run ${manifest.runId} attempt ${manifest.attempt} created ${manifest.createdAt}, whose folder is ${expected}`;
  return null;
}

/** A catalog row of a succeeded backup, as far as where its artifact lies goes. */
export interface RecordedBackup {
  id: string;
  attempt: number;
  /** The run's creation time, which dates its folder. */
  createdAt: string;
  artifact: { storeUrl: string; prefix: string } | null;
}

/**
 * Null when the row's recorded artifact is exactly where the server would have put it: in the
 * target's store, at `artifactPrefix(target's current name, run, attempt, created_at)`; else the
 * problem. After a rename or a change of store, backups taken before fail this check and are
 * left alone (reported), never deleted on the row's word.
 */
export function recordedArtifactProblem(row: RecordedBackup, target: { name: string; storeUrl: string }): string | null {
  if (!row.artifact) return 'it records no artifact';
  const expected = artifactPrefix(target.name, row.createdAt, row.id, row.attempt);
  if (row.artifact.storeUrl !== target.storeUrl) {
    return `it records its artifact in ${row.artifact.storeUrl}, not in the target's store ${target.storeUrl}`;
  }
  if (row.artifact.prefix !== expected) return `it records its artifact at ${row.artifact.prefix}, not at ${expected} where Backstop puts it`;
  return null;
}
