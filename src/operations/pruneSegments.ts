import type { Logger } from 'pino';
import { compareLsn, lsnSchema } from '../core/changeSegment.ts';
import { describeError } from '../core/errors.ts';
import { recordedArtifactProblem } from '../core/manifestBinding.ts';
import { planSegmentGarbage, segmentKeyOf, type ArchiveObject, type ArchiveSegment } from '../core/planSegmentGarbage.ts';
import { forgetChangeSegments } from '../db/changeSegments.ts';
import type { Queryable } from '../db/pool.ts';
import { listRetainedBackups } from '../db/retention.ts';
import type { TargetRecord } from '../db/targets.ts';
import { readSegmentManifest, segmentDataKey } from '../continuous/segmentFiles.ts';
import { readManifest } from '../pipeline/readManifest.ts';
import type { Store } from '../storage/store.ts';

export interface SegmentPruneResult {
  /** Segments no kept base backup can use: deleted (manifest, data, then catalog row), or on a dry run to be. */
  segments: { manifestKey: string; slot: string; startLsn: string; endLsn: string }[];
  /** Segment data objects without a manifest (a streamer's crash) past the grace period: deleted, or to be. */
  segmentDebris: { key: string; newestAt: string }[];
  /** Such objects still inside the grace period. */
  segmentDebrisWaiting: number;
  warnings: string[];
}

export interface SegmentPruneContext {
  now: number;
  dryRun: boolean;
  gracePeriodMs: number;
  store: Store;
  /** Backups retention is about to delete (a dry run's plan): no longer counted as kept. */
  leaving: ReadonlySet<string>;
  /** Complete backups in the store no catalog row vouches for: kept by garbage collection, so their segments are too. */
  unknownPrefixes: readonly string[];
}

/**
 * The change archive's part of a prune, after retention and the collection of leftovers (see
 * src/core/planSegmentGarbage.ts for the rule): read the store's segment keys and the kept
 * bases' consistent LSNs, plan, then delete each doomed segment's manifest first (the segment
 * stops existing at that moment; its data left alone by a crash is debris the next pass
 * collects), its data, and last the catalog's rows.
 */
export async function pruneSegments(deps: { db: Queryable; log: Logger }, target: TargetRecord, context: SegmentPruneContext): Promise<SegmentPruneResult> {
  const result: SegmentPruneResult = { segments: [], segmentDebris: [], segmentDebrisWaiting: 0, warnings: [] };
  const { store } = context;
  const prefix = `${target.name}/continuous/`;
  const manifests = new Map<string, { key: string; endLsn: string }>();
  const data: Array<ArchiveObject & { segment: string }> = [];
  for await (const object of store.list(prefix)) {
    const named = segmentKeyOf(prefix, object.key);
    if (!named) continue;
    if (named.manifest) manifests.set(named.segment, { key: object.key, endLsn: named.endLsn });
    else data.push({ key: object.key, lastModified: object.lastModified.getTime(), segment: named.segment });
  }
  if (manifests.size === 0 && data.length === 0) return result;
  const orphanData = data.filter((object) => !manifests.has(object.segment)).map(({ key, lastModified }) => ({ key, lastModified }));

  const kept = (await listRetainedBackups(deps.db, target.id)).filter((backup) => backup.prunedAt === null && !context.leaving.has(backup.id));
  const recorded = kept.flatMap((backup) => (backup.baseLsn ? [backup.baseLsn] : []));
  // The catalog's bases bound what can go; only segments within that bound are worth reading.
  const bound = recorded.length > 0 ? recorded.reduce((oldest, lsn) => (compareLsn(lsn, oldest) < 0 ? lsn : oldest)) : null;
  const candidates = [...manifests.values()].filter((manifest) => bound === null || compareLsn(manifest.endLsn, bound) <= 0);
  let baseLsns: string[] | null = [];
  if (candidates.length > 0) baseLsns = await keptBaseLsns(store, target, kept, context.unknownPrefixes, result.warnings);
  const oldest = baseLsns && baseLsns.length > 0 ? baseLsns.reduce((first, lsn) => (compareLsn(lsn, first) < 0 ? lsn : first)) : null;
  const segments: ArchiveSegment[] = [];
  for (const candidate of candidates) {
    if (oldest === null || compareLsn(candidate.endLsn, oldest) > 0) continue;
    try {
      const stored = await readSegmentManifest(store, candidate.key, { target: target.name, targetId: target.id });
      segments.push({ manifestKey: stored.manifestKey, manifest: stored.manifest, dataKey: segmentDataKey(stored) });
    } catch (error) {
      result.warnings.push(`change segment ${candidate.key} kept: ${describeError(error).message}`);
    }
  }
  const plan = planSegmentGarbage({ segments, orphanData, baseLsns, now: context.now, gracePeriodMs: context.gracePeriodMs });
  result.segments = plan.delete.map((segment) => ({
    manifestKey: segment.manifestKey,
    slot: segment.manifest.slot,
    startLsn: segment.manifest.startLsn,
    endLsn: segment.manifest.endLsn,
  }));
  result.segmentDebris = plan.debris.map((object) => ({ key: object.key, newestAt: new Date(object.lastModified).toISOString() }));
  result.segmentDebrisWaiting = plan.debrisWaiting;
  for (const warning of result.warnings) deps.log.warn({ target: target.name }, warning);
  if (context.dryRun) return result;

  for (const segment of plan.delete) {
    await store.delete([segment.manifestKey]);
    await store.delete([segment.dataKey]);
  }
  if (plan.before !== null) {
    const deleted = new Set(plan.delete.map((segment) => segment.manifestKey));
    const stillStored = [...manifests.values()].map((manifest) => manifest.key).filter((key) => !deleted.has(key));
    await forgetChangeSegments(deps.db, target.id, { deleted: [...deleted], endingBy: plan.before, stillStored });
  }
  if (plan.delete.length > 0) {
    deps.log.info({ target: target.name, segments: plan.delete.length, before: plan.before }, 'change segments no kept base backup uses deleted');
  }
  if (plan.debris.length > 0) {
    await store.delete(plan.debris.map((object) => object.key));
    deps.log.info({ target: target.name, objects: plan.debris.length }, 'change segment data without a manifest deleted');
  }
  return result;
}

/**
 * The consistent LSN of every base backup kept: the catalog's for a run that recorded one;
 * the manifest's for a kept run that did not (an imported base) and for a complete backup no
 * row vouches for. Null when one of those could not be read: it might be the oldest.
 */
async function keptBaseLsns(
  store: Store,
  target: TargetRecord,
  kept: Awaited<ReturnType<typeof listRetainedBackups>>,
  unknownPrefixes: readonly string[],
  warnings: string[],
): Promise<string[] | null> {
  const lsns: string[] = [];
  const prefixes: string[] = [...unknownPrefixes];
  for (const backup of kept) {
    if (backup.baseLsn) {
      lsns.push(backup.baseLsn);
      continue;
    }
    const misplaced = recordedArtifactProblem(backup, target);
    if (misplaced) {
      warnings.push(`change segments kept: backup ${backup.id} may be a base backup, and ${misplaced}`);
      return null;
    }
    prefixes.push(backup.artifact.prefix);
  }
  for (const prefix of prefixes) {
    try {
      const { manifest } = await readManifest(store, prefix);
      if (!manifest.continuous) continue;
      if (!lsnSchema.safeParse(manifest.continuous.consistentLsn).success) throw new Error(`its consistent LSN ${JSON.stringify(manifest.continuous.consistentLsn)} is not one`);
      lsns.push(manifest.continuous.consistentLsn);
    } catch (error) {
      warnings.push(`change segments kept: the manifest of ${prefix} could not be read (${describeError(error).message}); it may be the oldest base backup`);
      return null;
    }
  }
  return lsns;
}
