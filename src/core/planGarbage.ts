import { MANIFEST_NAME } from './manifest.ts';
import { activeStatuses, type RunStatus } from './runState.ts';

/**
 * Garbage collection of a target's store folder, pure. Artifacts live under
 * `<target>/<yyyy>/<mm>/<run-id>/attempt-<n>/`. Only positive evidence makes a prefix garbage,
 * never the mere absence of a catalog row (a target deleted and recreated with the same name, a
 * catalog restored from an older backup, a fresh catalog before `backstop import` all lack rows
 * of real backups):
 *
 * - no manifest, or a manifest that does not parse or does not bind to the prefix (its run,
 *   attempt, target and date are not the ones the prefix implies: e.g. copied from another
 *   run's folder), once its newest object is older than the grace period: nothing restorable
 *   is there;
 * - a complete attempt of a run whose catalog row says it succeeded at ANOTHER attempt, with
 *   that attempt recorded exactly where Backstop puts it: a run succeeds once, fenced by its
 *   lease, so the other attempt lost its lease and its files are no backup of the run.
 *
 * A complete, binding manifest with no row, or whose row is not a succeeded run naming it
 * (failed, timed_out, cancelled, of another target, or recording its artifact elsewhere), is an
 * UNKNOWN complete backup: kept and reported until a person imports or deletes it. A row that
 * says failed or timed_out is no evidence: a catalog restored from before the run finished
 * shows it running, and its reaper then times it out, while in truth it succeeded. A manifest
 * that cannot be read (a store error) is no evidence either way: nothing is deleted on it.
 * Keys that do not have the artifact layout are never touched.
 */

export interface StoredKey {
  key: string;
  /** Store's modification time, ms since the epoch. */
  lastModified: number;
}

/** What the catalog says of a run, for GC. */
export interface CatalogRun {
  status: RunStatus;
  /** The run belongs to the target being collected (a recreated target does not own the old one's runs). */
  ofTarget: boolean;
  /** Its current (for a succeeded run: its succeeding) attempt. */
  attempt: number;
  /** Null when its artifact is exactly where Backstop puts it (see recordedArtifactProblem); else why not. */
  artifactProblem: string | null;
  /** The prefix its artifact was recorded at (succeeded runs). */
  artifactPrefix: string | null;
  pruned: boolean;
}

/** What reading a prefix's manifest found. */
export type ManifestCheck =
  | { state: 'absent' }
  /** The store failed to answer: no evidence either way. */
  | { state: 'unreadable'; problem: string }
  /** Read, but not a valid manifest of this prefix (does not parse, or does not bind). */
  | { state: 'invalid'; problem: string }
  | { state: 'valid' }
  /** Not read: the catalog's row names this prefix as its live artifact, which is kept whatever it holds. */
  | { state: 'unread' };

export type GarbageReason = 'incomplete' | 'invalid-manifest' | 'superseded-attempt';

/** Why a complete backup is unknown: no row, or a row that does not vouch for it. */
export type UnknownReason = 'run-missing' | 'run-not-succeeded' | 'run-of-another-target' | 'recorded-elsewhere';

export interface PrefixSummary {
  prefix: string;
  runId: string;
  attempt: number;
  hasManifest: boolean;
  objects: number;
  newestAt: number;
}

export interface ExaminedPrefix extends PrefixSummary {
  manifest: ManifestCheck;
}

export interface GarbagePlan {
  delete: (PrefixSummary & { reason: GarbageReason })[];
  /** Garbage still inside its grace period. */
  waiting: (PrefixSummary & { reason: GarbageReason })[];
  /** Complete backups no catalog row vouches for: never deleted by the plan. */
  unknown: (PrefixSummary & { reason: UnknownReason; detail: string })[];
  /** Live artifacts that look damaged, unreadable manifests: reported, never deleted. */
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

export function planGarbage(prefixes: readonly ExaminedPrefix[], runs: ReadonlyMap<string, CatalogRun>, options: { now: number; gracePeriodMs: number }): GarbagePlan {
  const plan: GarbagePlan = { delete: [], waiting: [], unknown: [], warnings: [] };
  const collect = (summary: ExaminedPrefix, reason: GarbageReason) => {
    const { manifest: _manifest, ...rest } = summary;
    const entry = { ...rest, reason };
    if (summary.newestAt <= options.now - options.gracePeriodMs) plan.delete.push(entry);
    else plan.waiting.push(entry);
  };
  for (const summary of prefixes) {
    const run = runs.get(summary.runId);
    // A run still in progress owns whatever it has written so far, however old.
    if (run && (activeStatuses as readonly string[]).includes(run.status)) continue;
    const live = run !== undefined && run.status === 'succeeded' && run.artifactPrefix === summary.prefix;
    if (live) {
      // Retention deletes its own choices (pruned rows); garbage collection never does.
      const check = summary.manifest;
      if (!run.pruned && (check.state === 'absent' || check.state === 'invalid')) {
        const problem = check.state === 'absent' ? `has no ${MANIFEST_NAME}` : `has a manifest that is not its own: ${check.problem}`;
        plan.warnings.push(`${summary.prefix} is the artifact of succeeded run ${summary.runId} but ${problem}; it was left in place.`);
      }
      continue;
    }
    const check = summary.manifest;
    if (check.state === 'unreadable' || check.state === 'unread') {
      const problem = check.state === 'unread' ? 'it was not read' : check.problem;
      plan.warnings.push(`${summary.prefix}${MANIFEST_NAME} could not be read (${problem}); nothing is deleted on a failed read, the next pass looks again.`);
      continue;
    }
    if (check.state === 'absent') {
      collect(summary, 'incomplete');
      continue;
    }
    if (check.state === 'invalid') {
      collect(summary, 'invalid-manifest');
      continue;
    }
    // A complete backup of its own prefix: garbage only when its run's row vouches for another attempt.
    const { manifest: _manifest, ...rest } = summary;
    if (!run) {
      plan.unknown.push({ ...rest, reason: 'run-missing', detail: `the catalog has no run ${summary.runId}` });
    } else if (!run.ofTarget) {
      plan.unknown.push({ ...rest, reason: 'run-of-another-target', detail: `run ${summary.runId} belongs to another target` });
    } else if (run.status !== 'succeeded') {
      plan.unknown.push({ ...rest, reason: 'run-not-succeeded', detail: `the catalog records run ${summary.runId} as ${run.status}` });
    } else if (run.artifactProblem !== null || run.attempt === summary.attempt) {
      plan.unknown.push({
        ...rest,
        reason: 'recorded-elsewhere',
        detail: `the catalog's row of run ${summary.runId} does not name this folder: ${run.artifactProblem ?? `it records ${run.artifactPrefix}`}`,
      });
    } else {
      collect(summary, 'superseded-attempt');
    }
  }
  return plan;
}
