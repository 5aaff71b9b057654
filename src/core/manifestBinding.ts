import { MANIFEST_NAME, artifactPrefix, type Manifest } from './manifest.ts';

/**
 * What a manifest must agree with to be the backup of one attempt of one run. Every reader
 * that acts on a stored backup because of a catalog row (finalize, restore, drills, import,
 * garbage collection) asks this one question: a manifest is a file in a store, and a store
 * holds whatever anyone with its credentials wrote there, so "a valid manifest" is not yet
 * "this run's backup".
 */
export interface ManifestBindingExpectation {
  runId: string;
  attempt: number;
  /** The target's name; compared when the manifest (an older one) or the caller has no target id. */
  targetName: string;
  /** The target's catalog id; when both sides have one, it decides, not the name. */
  targetId?: string;
  /** The prefix the manifest was read from, relative to the store's root (ends with "/"). */
  prefix: string;
}

export type ManifestBinding = { bound: true } | { bound: false; reason: string };

/**
 * Whether `manifest`, read from `expected.prefix`, is the backup of run `expected.runId`,
 * attempt `expected.attempt`, of the expected target, sitting at the prefix its own run id,
 * attempt, target and creation month imply, with every file it names inside that prefix.
 * Pure: the caller reads the manifest and knows the run.
 */
export function manifestBindsTo(manifest: Manifest, expected: ManifestBindingExpectation): ManifestBinding {
  const refuse = (reason: string): ManifestBinding => ({ bound: false, reason });
  if (manifest.runId !== expected.runId) {
    return refuse(`the manifest at ${expected.prefix} belongs to run ${manifest.runId}, not to run ${expected.runId}`);
  }
  if (manifest.attempt !== expected.attempt) {
    return refuse(`the manifest at ${expected.prefix} was written by attempt ${manifest.attempt} of run ${manifest.runId}, not by attempt ${expected.attempt}`);
  }
  if (manifest.targetId !== undefined && expected.targetId !== undefined) {
    if (manifest.targetId !== expected.targetId) {
      return refuse(
        `the manifest at ${expected.prefix} was written for target id ${manifest.targetId} ("${manifest.target}"), not for target id ${expected.targetId} ("${expected.targetName}")`,
      );
    }
  } else if (manifest.target !== expected.targetName) {
    return refuse(`the manifest at ${expected.prefix} was written for target "${manifest.target}", not for target "${expected.targetName}"`);
  }
  const implied = artifactPrefix(manifest.target, manifest.createdAt, manifest.runId, manifest.attempt);
  if (expected.prefix !== implied) {
    return refuse(`the manifest sits at ${expected.prefix || '(the store root)'}, but its run, attempt, target and date place it at ${implied}`);
  }
  const names = new Set<string>();
  for (const file of manifest.files) {
    const problem = fileNameProblem(file.name);
    if (problem) return refuse(`the manifest at ${expected.prefix} names a file "${file.name}" that ${problem}`);
    if (names.has(file.name)) return refuse(`the manifest at ${expected.prefix} names the file "${file.name}" twice`);
    names.add(file.name);
  }
  return { bound: true };
}

/**
 * Whether a manifest read from `prefix` of `targetName`'s layout is that prefix's own backup:
 * the question garbage collection asks when no catalog row names the prefix. The same rule as
 * `manifestBindsTo`, with the run and attempt the manifest itself claims (the prefix check then
 * ties them to the folder).
 */
export function manifestBindsToItsPrefix(manifest: Manifest, targetName: string, prefix: string): ManifestBinding {
  return manifestBindsTo(manifest, { runId: manifest.runId, attempt: manifest.attempt, targetName, prefix });
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

/** Why a manifest's file name does not stay inside its prefix, or null when it does. */
function fileNameProblem(name: string): string | null {
  if (name === MANIFEST_NAME) return 'is the manifest itself';
  if (name.includes('\0')) return 'holds a NUL character';
  if (name.startsWith('/')) return 'is an absolute path';
  if (name.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) return 'leaves its prefix (an empty, "." or ".." segment)';
  return null;
}
