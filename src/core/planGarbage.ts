import { MANIFEST_NAME } from './manifest.ts';
import { activeStatuses, type RunStatus } from './runState.ts';

/**
 * Garbage collection of a target's store folder, pure. Artifacts live under
 * `<target>/<yyyy>/<mm>/<run-id>/attempt-<n>/`; the only prefix worth keeping for a run is the
 * one its catalog row names as its artifact, once the run succeeded. Anything else is left
 * over by a runner that died (no manifest), or wrote its manifest and then lost its run, and
 * is deleted once its newest object is older than the grace period. Keys that do not have
 * the artifact layout are never touched.
 */

export interface StoredKey {
  key: string;
  /** Store's modification time, ms since the epoch. */
  lastModified: number;
}

/** What the catalog says of a run, for GC. */
export interface CatalogRun {
  status: RunStatus;
  /** The prefix its artifact was recorded at (succeeded runs). */
  artifactPrefix: string | null;
  pruned: boolean;
}

export type GarbageReason = 'incomplete' | 'run-not-succeeded' | 'run-missing' | 'superseded-attempt' | 'pruned';

export interface PrefixSummary {
  prefix: string;
  runId: string;
  attempt: number;
  hasManifest: boolean;
  objects: number;
  newestAt: number;
}

export interface GarbagePlan {
  delete: (PrefixSummary & { reason: GarbageReason })[];
  /** Garbage still inside its grace period. */
  waiting: (PrefixSummary & { reason: GarbageReason })[];
  /** Live artifacts that look damaged: reported, never deleted. */
  warnings: string[];
}

const PREFIX = /^(\d{4})\/(\d{2})\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/attempt-(\d+)\//;

/** The artifact prefix, run and attempt a key of a target's layout lies under; null for any other key. */
export function artifactOfKey(target: string, key: string): { prefix: string; runId: string; attempt: number } | null {
  const root = `${target}/`;
  if (!key.startsWith(root)) return null;
  const match = PREFIX.exec(key.slice(root.length));
  return match ? { prefix: root + match[0], runId: match[3]!, attempt: Number(match[4]) } : null;
}

/** Groups a target's keys by artifact prefix; keys outside the layout are dropped. */
export function groupArtifactPrefixes(target: string, keys: readonly StoredKey[]): PrefixSummary[] {
  const groups = new Map<string, PrefixSummary>();
  for (const { key, lastModified } of keys) {
    const artifact = artifactOfKey(target, key);
    if (!artifact) continue;
    const { prefix } = artifact;
    let group = groups.get(prefix);
    if (!group) {
      group = { prefix, runId: artifact.runId, attempt: artifact.attempt, hasManifest: false, objects: 0, newestAt: lastModified };
      groups.set(prefix, group);
    }
    group.objects++;
    group.newestAt = Math.max(group.newestAt, lastModified);
    if (key === prefix + MANIFEST_NAME) group.hasManifest = true;
  }
  return [...groups.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
}

export function planGarbage(
  prefixes: readonly PrefixSummary[],
  runs: ReadonlyMap<string, CatalogRun>,
  options: { now: number; gracePeriodMs: number },
): GarbagePlan {
  const plan: GarbagePlan = { delete: [], waiting: [], warnings: [] };
  for (const summary of prefixes) {
    const run = runs.get(summary.runId);
    // A run still in progress owns whatever it has written so far, however old.
    if (run && (activeStatuses as readonly string[]).includes(run.status)) continue;
    const live = run !== undefined && run.status === 'succeeded' && !run.pruned && run.artifactPrefix === summary.prefix;
    if (live) {
      if (!summary.hasManifest) {
        plan.warnings.push(`${summary.prefix} is the artifact of succeeded run ${summary.runId} but has no ${MANIFEST_NAME}; it was left in place.`);
      }
      continue;
    }
    let reason: GarbageReason;
    if (!run) reason = summary.hasManifest ? 'run-missing' : 'incomplete';
    else if (run.pruned) reason = 'pruned';
    else if (!summary.hasManifest) reason = 'incomplete';
    else if (run.status !== 'succeeded') reason = 'run-not-succeeded';
    else reason = 'superseded-attempt';
    const entry = { ...summary, reason };
    if (summary.newestAt <= options.now - options.gracePeriodMs) plan.delete.push(entry);
    else plan.waiting.push(entry);
  }
  return plan;
}
