import { createHash } from 'node:crypto';
import type { CatalogArtifact, CatalogRun, Violation } from './catalogChecks.ts';
import type { ChaosTarget, StoreKind } from './environment.ts';
import { measure, readAll, type ObjectReader } from './objectStores.ts';

/**
 * Invariants 2 and the garbage-collection promise, checked against the stores themselves:
 * every succeeded run's manifest and files are there, byte for byte as recorded, and nothing
 * else is.
 */

export interface StoreView {
  kind: StoreKind;
  reader: ObjectReader;
  /** Where the store's keys start in the reader's namespace (`direct/` in the bucket, `` on disk). */
  keyPrefix: string;
}

export interface StoreStats {
  objects: number;
  bytes: number;
  /** Objects that belong to a succeeded run's artifact. */
  live: number;
  /**
   * Objects of complete backups no succeeded row names (a runner killed between its manifest
   * and its finalize, whose run then timed out): garbage collection keeps and reports them
   * by design, never deletes them on the absence of a row.
   */
  unknownKept: number;
}

export async function checkArtifacts(
  runs: readonly CatalogRun[],
  targets: ReadonlyMap<string, ChaosTarget>,
  stores: ReadonlyMap<StoreKind, StoreView>,
  violations: Violation[],
): Promise<number> {
  let checked = 0;
  for (const run of runs) {
    if (run.status !== 'succeeded' || !run.artifact) continue;
    const target = targets.get(run.target)!;
    const store = stores.get(target.store)!;
    checked++;
    for (const problem of await artifactProblems(run, run.artifact, store)) violations.push({ invariant: 'noFalseSuccess', runId: run.id, detail: problem });
  }
  return checked;
}

async function artifactProblems(run: CatalogRun, artifact: CatalogArtifact, store: StoreView): Promise<string[]> {
  const problems: string[] = [];
  const created = new Date(run.createdAt);
  const expectedPrefix = `${run.target}/${created.getUTCFullYear()}/${String(created.getUTCMonth() + 1).padStart(2, '0')}/${run.id}/attempt-${run.attempt}/`;
  if (artifact.prefix !== expectedPrefix) problems.push(`artifact prefix ${artifact.prefix}, expected ${expectedPrefix} (the final attempt's)`);
  const manifestStream = await store.reader.read(store.keyPrefix + artifact.prefix + artifact.manifest.name);
  if (!manifestStream) return [...problems, `${artifact.manifest.name} is missing from ${store.reader.description}`];
  const manifestBytes = await readAll(manifestStream);
  const manifestDigest = { size: manifestBytes.length, sha256: createHash('sha256').update(manifestBytes).digest('hex') };
  if (manifestDigest.size !== artifact.manifest.size || manifestDigest.sha256 !== artifact.manifest.sha256) {
    problems.push(
      `manifest is ${manifestDigest.size} bytes / ${manifestDigest.sha256.slice(0, 12)}…, the catalog recorded ${artifact.manifest.size} / ${artifact.manifest.sha256.slice(0, 12)}…`,
    );
  }
  let manifest: { runId?: string; attempt?: number; target?: string; files?: { name: string; size: number; sha256: string }[] };
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8'));
  } catch (error) {
    return [...problems, `manifest is not JSON: ${(error as Error).message}`];
  }
  if (manifest.runId !== run.id || manifest.attempt !== run.attempt || manifest.target !== run.target) {
    problems.push(`manifest names run ${manifest.runId} attempt ${manifest.attempt} of ${manifest.target}`);
  }
  const listed = (manifest.files ?? []).map((file) => `${file.name}:${file.size}:${file.sha256}`).sort();
  const recorded = artifact.files.map((file) => `${file.name}:${file.size}:${file.sha256}`).sort();
  if (listed.length === 0 || JSON.stringify(listed) !== JSON.stringify(recorded))
    problems.push(`manifest files [${listed.join(', ')}] differ from the catalog's [${recorded.join(', ')}]`);
  for (const file of manifest.files ?? []) {
    const stream = await store.reader.read(store.keyPrefix + artifact.prefix + file.name);
    if (!stream) {
      problems.push(`${file.name} is missing`);
      continue;
    }
    const stored = await measure(stream);
    if (stored.size !== file.size || stored.sha256 !== file.sha256) {
      problems.push(`${file.name} is ${stored.size} bytes / ${stored.sha256.slice(0, 12)}…, the manifest says ${file.size} / ${file.sha256.slice(0, 12)}…`);
    }
  }
  return problems;
}

/**
 * After garbage collection every object must belong to a succeeded run's recorded artifact
 * (its files and manifest), or to a complete backup that garbage collection keeps by design: a
 * folder whose manifest (read and parsed here) names exactly that run, attempt and target, of
 * a run the catalog does not record as succeeded. Anything else — a prefix without a manifest,
 * a failed run's leftovers, a `.partial-*` file of a killed writer, a superseded attempt of a
 * succeeded run — is an orphan.
 */
export async function checkOrphans(
  runs: readonly CatalogRun[],
  targets: ReadonlyMap<string, ChaosTarget>,
  readers: readonly { reader: ObjectReader; views: StoreView[] }[],
  violations: Violation[],
): Promise<StoreStats> {
  const stats: StoreStats = { objects: 0, bytes: 0, live: 0, unknownKept: 0 };
  const runsById = new Map(runs.map((run) => [run.id, run]));
  for (const { reader, views } of readers) {
    const live = new Set<string>();
    for (const run of runs) {
      if (run.status !== 'succeeded' || !run.artifact) continue;
      const view = views.find((candidate) => candidate.kind === targets.get(run.target)?.store);
      if (!view) continue;
      for (const name of [run.artifact.manifest.name, ...run.artifact.files.map((file) => file.name)]) live.add(view.keyPrefix + run.artifact.prefix + name);
    }
    const objects = await reader.list();
    const kept = new Set<string>();
    for (const object of objects) {
      if (live.has(object.key) || !object.key.endsWith('/manifest.json')) continue;
      const folder = object.key.slice(0, -'manifest.json'.length);
      const view = views.find((candidate) => folder.startsWith(candidate.keyPrefix));
      const match = view && /^([^/]+)\/(\d{4})\/(\d{2})\/([0-9a-f-]{36})\/attempt-(\d+)\/$/.exec(folder.slice(view.keyPrefix.length));
      if (!match) continue;
      const [, target, year, month, runId, attempt] = match;
      if (runsById.get(runId!)?.status === 'succeeded') continue; // a superseded attempt: garbage
      const stream = await reader.read(object.key);
      if (!stream) continue;
      let manifest: { runId?: string; attempt?: number; target?: string; createdAt?: string };
      try {
        manifest = JSON.parse((await readAll(stream)).toString('utf8'));
      } catch {
        continue;
      }
      const created = new Date(manifest.createdAt ?? '');
      if (
        manifest.runId === runId &&
        manifest.attempt === Number(attempt) &&
        manifest.target === target &&
        created.getUTCFullYear() === Number(year) &&
        created.getUTCMonth() + 1 === Number(month)
      ) {
        kept.add(folder);
      }
    }
    for (const object of objects) {
      stats.objects++;
      stats.bytes += object.size;
      if (live.has(object.key)) {
        stats.live++;
        continue;
      }
      if ([...kept].some((folder) => object.key.startsWith(folder))) {
        stats.unknownKept++;
        continue;
      }
      const runId = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(object.key)?.[0];
      const owner = runId ? runsById.get(runId) : undefined;
      violations.push({
        invariant: 'noOrphans',
        runId,
        detail: `${reader.description}: ${object.key} (${object.size} bytes)${owner ? `, run ${owner.status} at attempt ${owner.attempt}` : runId ? ', run unknown to the catalog' : ''}`,
      });
    }
  }
  return stats;
}
