import type { Logger } from 'pino';
import { BackstopError, describeError, isBackstopError, type ErrorCode } from '../core/errors.ts';
import { MANIFEST_NAME } from '../core/manifest.ts';
import {
  artifactOfKey,
  groupArtifactPrefixes,
  planGarbage,
  type CatalogRun,
  type ExaminedPrefix,
  type GarbageReason,
  type ManifestCheck,
  type UnknownReason,
} from '../core/planGarbage.ts';
import { describeReason, planRetention, validateRetentionPolicy, type RetentionPolicy } from '../core/planRetention.ts';
import { manifestBindsToItsPrefix, recordedArtifactProblem } from '../core/manifestBinding.ts';
import type { Queryable } from '../db/pool.ts';
import {
  databaseNow,
  deletePrunedRun,
  forgetUnknownBackups,
  listRetainedBackups,
  markRunPruned,
  pendingUploads,
  recordUnknownBackups,
  runsForGarbage,
  type RetainedBackup,
} from '../db/retention.ts';
import { appendRunEvent } from '../db/runEvents.ts';
import { activeStatuses } from '../core/runState.ts';
import { getTarget, listTargets, type TargetRecord } from '../db/targets.ts';
import { deletePrefix } from '../pipeline/backup.ts';
import { readManifest } from '../pipeline/readManifest.ts';
import { pruneSegments, type SegmentPruneResult } from './pruneSegments.ts';
import { openStore } from '../storage/openStore.ts';
import type { Store } from '../storage/store.ts';

export const DEFAULT_GC_GRACE_MS = 24 * 3_600_000;

export interface PruneOptions {
  /** Only this target; default all. */
  targetName?: string;
  /** Plan and report only. */
  dryRun?: boolean;
  /** Leftover prefixes are deleted once their newest object is older than this. Default 24 h. */
  gracePeriodMs?: number;
  /** Replaces the database clock (tests), ms. */
  now?: number;
  /**
   * Also delete the complete backups no catalog row vouches for (reported as `unknown`): a
   * person's explicit decision, never the default. Each target's list is handed to
   * `beforeDeletingUnknown` first, then exactly those prefixes are deleted.
   */
  deleteUnknown?: boolean;
  beforeDeletingUnknown?: (target: string, prefixes: readonly string[]) => void;
}

export interface UnknownBackupReport {
  prefix: string;
  runId: string;
  attempt: number;
  reason: UnknownReason;
  detail: string;
  objects: number;
  newestAt: string;
}

export interface TargetPruneReport {
  target: string;
  /** Null: the target has no retention policy and keeps every backup (leftovers are still collected). */
  policy: RetentionPolicy | null;
  keep: { id: string; takenAt: string; reasons: string[] }[];
  delete: { id: string; takenAt: string; prefix: string }[];
  /** Runs whose deletion an earlier prune started and this one finished. */
  resumed: string[];
  /** Runs deleted (objects, then catalog row); empty on a dry run. */
  deleted: string[];
  /** Planned deletions the catalog refused at apply time (it became the newest or newest verified). */
  refused: string[];
  /**
   * Backups retention chose (or an interrupted prune left) that were left in place: the row's
   * artifact is not exactly where Backstop puts the target's backups (a forged or stale row, a
   * renamed target, a changed store), or its manifest is missing, unreadable or not its own.
   */
  unverified: { id: string; prefix: string; reason: string }[];
  garbage: { prefix: string; reason: GarbageReason; objects: number; newestAt: string }[];
  /** Leftovers still inside the grace period. */
  garbageWaiting: number;
  /**
   * Complete backups in the target's folder that no catalog row vouches for: kept, never
   * collected. Import them (`backstop import`) or delete them (`backstop prune --delete-unknown`).
   */
  unknown: UnknownBackupReport[];
  /** Unknown backups deleted on request (`deleteUnknown`). */
  unknownDeleted: string[];
  /**
   * Multipart uploads that runs no longer active left unfinished (their runner died), aborted
   * (`gone`: the store no longer knew them). On a dry run: the ones that would be.
   */
  uploads: { runId: string; key: string; uploadId: string; result: 'aborted' | 'gone' | 'pending' }[];
  /** Change segments (continuous targets) that end at or before the oldest kept base backup's consistent LSN: deleted, or on a dry run to be. */
  segments: SegmentPruneResult['segments'];
  /** Segment data objects whose manifest was never written, past the grace period: deleted, or on a dry run to be. */
  segmentDebris: SegmentPruneResult['segmentDebris'];
  segmentDebrisWaiting: number;
  warnings: string[];
  error: { code: ErrorCode; message: string } | null;
}

export interface PruneReport {
  dryRun: boolean;
  at: string;
  gracePeriodMs: number;
  targets: TargetPruneReport[];
}

/**
 * Read → plan → apply, per target: retention first (objects of each pruned backup deleted
 * between marking its row pruned and deleting the row), then garbage collection of
 * leftovers in the target's store folder, then of the change segments no kept base backup
 * uses (continuous targets). Safe to run from several processes at once: every
 * step is idempotent or conditional. A failing target is reported and the others go on.
 */
export interface PruneDeps {
  db: Queryable;
  log: Logger;
  cwd?: string;
  /** How a store URL is opened; default openStore (tests wrap it to watch the order of deletions). */
  openStore?: (url: string) => Promise<Store>;
}

export async function pruneTargets(deps: PruneDeps, options: PruneOptions = {}): Promise<PruneReport> {
  const gracePeriodMs = options.gracePeriodMs ?? DEFAULT_GC_GRACE_MS;
  const dryRun = options.dryRun ?? false;
  const targets = options.targetName ? [await getTarget(deps.db, options.targetName)] : await listTargets(deps.db);
  const now = options.now ?? (await databaseNow(deps.db));
  const stores = new Map<string, Promise<Store>>();
  const storeFor = (url: string) => {
    let store = stores.get(url);
    if (!store) {
      store = deps.openStore ? deps.openStore(url) : openStore(url, deps.cwd);
      stores.set(url, store);
    }
    return store;
  };
  const report: PruneReport = { dryRun, at: new Date(now).toISOString(), gracePeriodMs, targets: [] };
  try {
    for (const target of targets) {
      const entry: TargetPruneReport = {
        target: target.name,
        policy: null,
        keep: [],
        delete: [],
        resumed: [],
        deleted: [],
        refused: [],
        unverified: [],
        garbage: [],
        garbageWaiting: 0,
        unknown: [],
        unknownDeleted: [],
        uploads: [],
        segments: [],
        segmentDebris: [],
        segmentDebrisWaiting: 0,
        warnings: [],
        error: null,
      };
      report.targets.push(entry);
      try {
        await applyRetention(deps, target, entry, { now, dryRun, storeFor });
        await collectGarbage(deps, target, entry, {
          now,
          dryRun,
          gracePeriodMs,
          storeFor,
          deleteUnknown: options.deleteUnknown ?? false,
          beforeDeletingUnknown: options.beforeDeletingUnknown,
        });
        // After both: the bases kept are then known, and so are the unknown backups garbage collection keeps.
        const segments = await pruneSegments(deps, target, {
          now,
          dryRun,
          gracePeriodMs,
          store: await storeFor(target.storeUrl),
          leaving: new Set(dryRun ? entry.delete.map((doomed) => doomed.id) : []),
          unknownPrefixes: entry.unknown.filter((item) => !entry.unknownDeleted.includes(item.prefix)).map((item) => item.prefix),
        });
        entry.segments = segments.segments;
        entry.segmentDebris = segments.segmentDebris;
        entry.segmentDebrisWaiting = segments.segmentDebrisWaiting;
        entry.warnings.push(...segments.warnings);
      } catch (error) {
        entry.error = describeError(error);
        deps.log.error({ target: target.name, err: error }, 'prune of this target failed');
      }
    }
  } finally {
    for (const store of stores.values()) await (await store.catch(() => null))?.close();
  }
  return report;
}

interface ApplyContext {
  now: number;
  dryRun: boolean;
  storeFor: (url: string) => Promise<Store>;
}

async function applyRetention(deps: { db: Queryable; log: Logger }, target: TargetRecord, entry: TargetPruneReport, context: ApplyContext) {
  const backups = await listRetainedBackups(deps.db, target.id);
  const byId = new Map(backups.map((backup) => [backup.id, backup]));
  // An interrupted prune left rows marked pruned: their objects may be partly gone, so they
  // are no candidates for anything but finishing the deletion.
  const interrupted = backups.filter((backup) => backup.prunedAt !== null);
  if (target.retention) {
    const policy = validateRetentionPolicy({ timezone: target.schedule?.timezone, ...target.retention });
    entry.policy = policy;
    const candidates = backups.filter((backup) => backup.prunedAt === null).map((backup) => ({ id: backup.id, takenAt: Date.parse(backup.takenAt), verified: backup.verified }));
    const plan = planRetention(candidates, policy, context.now);
    entry.keep = plan.keep.map((kept) => ({ id: kept.id, takenAt: byId.get(kept.id)!.takenAt, reasons: kept.reasons.map(describeReason) }));
    entry.delete = plan.delete.map((doomed) => ({ id: doomed.id, takenAt: byId.get(doomed.id)!.takenAt, prefix: byId.get(doomed.id)!.artifact.prefix }));
  }
  if (context.dryRun) return;
  const store = await context.storeFor(target.storeUrl);
  const removeObjectsAndRow = async (backup: RetainedBackup) => {
    // Order: row marked pruned (done by the caller) → objects → row. A crash in between
    // leaves a marked row that the next prune finishes; never a row without its objects
    // that still looks restorable. The objects deleted are those of the target's own store at
    // the prefix Backstop derives, which verifyOwnBackup checked the row records.
    await deletePrefix(store, backup.artifact.prefix);
    await deletePrunedRun(deps.db, backup.id);
  };
  const leaveAlone = (backup: RetainedBackup, reason: string) => {
    entry.unverified.push({ id: backup.id, prefix: backup.artifact.prefix, reason });
    deps.log.warn({ target: target.name, runId: backup.id, reason }, "retention: backup left in place, it could not be verified as this target's own");
  };
  for (const backup of interrupted) {
    // An earlier pass checked this backup before marking it, and may have deleted its manifest
    // already: its row's place is checked again, a manifest still there must bind.
    const problem = await verifyOwnBackup(store, target, backup, { manifestRequired: false });
    if (problem) {
      leaveAlone(backup, problem);
      continue;
    }
    await removeObjectsAndRow(backup);
    entry.resumed.push(backup.id);
  }
  for (const doomed of entry.delete) {
    const backup = byId.get(doomed.id)!;
    const problem = await verifyOwnBackup(store, target, backup, { manifestRequired: true });
    if (problem) {
      leaveAlone(backup, problem);
      continue;
    }
    if (!(await markRunPruned(deps.db, doomed.id))) {
      entry.refused.push(doomed.id);
      deps.log.warn({ target: target.name, runId: doomed.id }, 'retention: the catalog refused to prune this backup (now the newest or newest verified)');
      continue;
    }
    await removeObjectsAndRow(backup);
    entry.deleted.push(doomed.id);
    deps.log.info({ target: target.name, runId: doomed.id, prefix: doomed.prefix }, 'retention: backup deleted');
  }
}

/**
 * Null when a backup retention is about to delete is the target's own: its row records its
 * artifact exactly where Backstop puts it (the target's store, the prefix derived from the
 * target's name, the run, its attempt and creation), and the manifest there binds to that
 * prefix. A row alone never sends a deletion anywhere else: a forged `file:///victim` + prefix
 * fails the first check. A failed read is no evidence: the backup waits for the next pass.
 */
async function verifyOwnBackup(store: Store, target: TargetRecord, backup: RetainedBackup, options: { manifestRequired: boolean }): Promise<string | null> {
  const misplaced = recordedArtifactProblem(backup, target);
  if (misplaced) return misplaced;
  const prefix = backup.artifact.prefix;
  let present: { size: number } | null;
  try {
    present = await store.stat(prefix + MANIFEST_NAME);
  } catch (error) {
    return `its manifest could not be read (${describeError(error).message}); the next pass tries again`;
  }
  if (!present) return options.manifestRequired ? `${prefix}${MANIFEST_NAME} is missing: nothing there proves these files are this backup` : null;
  const check = await checkManifest(store, target.name, prefix);
  if (check.state === 'valid') return null;
  if (check.state === 'unreadable') return `its manifest could not be read (${check.problem}); the next pass tries again`;
  if (check.state === 'invalid') return `${prefix}${MANIFEST_NAME} is not this backup's: ${check.problem}`;
  return options.manifestRequired ? `${prefix}${MANIFEST_NAME} is missing: nothing there proves these files are this backup` : null;
}

/**
 * Reads and checks the manifest of a prefix. Only a manifest that was read and is wrong is
 * evidence (`invalid`); a store that failed to answer (or, racing a listing, no longer has
 * it) is `unreadable`, on which nothing is ever deleted.
 */
async function checkManifest(store: Store, targetName: string, prefix: string): Promise<ManifestCheck> {
  try {
    const { manifest } = await readManifest(store, prefix);
    const binding = manifestBindsToItsPrefix(manifest, targetName, prefix);
    return binding.bound ? { state: 'valid' } : { state: 'invalid', problem: binding.reason };
  } catch (error) {
    if (isBackstopError(error, 'ARTIFACT_CORRUPT')) return { state: 'invalid', problem: error.message };
    return { state: 'unreadable', problem: describeError(error).message };
  }
}

async function collectGarbage(
  deps: { db: Queryable; log: Logger },
  target: TargetRecord,
  entry: TargetPruneReport,
  context: ApplyContext & { gracePeriodMs: number; deleteUnknown: boolean; beforeDeletingUnknown?: (target: string, prefixes: readonly string[]) => void },
) {
  const store = await context.storeFor(target.storeUrl);
  // The store is listed before the catalog is read: a run created in between is then at worst
  // unknown to this pass's listing, never a listed prefix judged against a stale catalog.
  const keys = [];
  for await (const object of store.list(`${target.name}/`)) keys.push({ key: object.key, lastModified: object.lastModified.getTime() });
  const prefixes = groupArtifactPrefixes(target.name, keys);
  const rows = await runsForGarbage(deps.db, [...new Set(prefixes.map((prefix) => prefix.runId))]);
  const runs = new Map<string, CatalogRun>();
  for (const [id, row] of rows) {
    runs.set(id, {
      status: row.status,
      ofTarget: row.targetId === target.id && row.kind === 'backup',
      attempt: row.attempt,
      artifactProblem: recordedArtifactProblem(row, target),
      artifactPrefix: row.artifact?.prefix ?? null,
      pruned: row.pruned,
    });
  }
  // Every manifest is read, but those of live artifacts (kept whatever they hold) and of runs
  // still in progress (which own their folder).
  const examined: ExaminedPrefix[] = [];
  for (const summary of prefixes) {
    const run = runs.get(summary.runId);
    let manifest: ManifestCheck;
    if (!summary.hasManifest) manifest = { state: 'absent' };
    else if (run && (run.status === 'succeeded' ? run.artifactPrefix === summary.prefix : (activeStatuses as readonly string[]).includes(run.status))) manifest = { state: 'unread' };
    else manifest = await checkManifest(store, target.name, summary.prefix);
    examined.push({ ...summary, manifest });
  }
  const plan = planGarbage(examined, runs, { now: context.now, gracePeriodMs: context.gracePeriodMs });
  entry.garbage = plan.delete.map((item) => ({
    prefix: item.prefix,
    reason: item.reason,
    objects: item.objects,
    newestAt: new Date(item.newestAt).toISOString(),
  }));
  entry.garbageWaiting = plan.waiting.length;
  entry.unknown = plan.unknown.map((item) => ({
    prefix: item.prefix,
    runId: item.runId,
    attempt: item.attempt,
    reason: item.reason,
    detail: item.detail,
    objects: item.objects,
    newestAt: new Date(item.newestAt).toISOString(),
  }));
  entry.warnings.push(...plan.warnings);
  for (const warning of plan.warnings) deps.log.warn({ target: target.name }, warning);
  for (const item of entry.unknown) {
    deps.log.warn(
      { target: target.name, prefix: item.prefix, reason: item.reason },
      `unknown complete backup kept: ${item.detail}; import it (backstop import) or delete it (backstop prune --delete-unknown)`,
    );
  }
  await abortLeftUploads(deps, target, store, entry, context.dryRun);
  if (context.dryRun) return;
  for (const item of plan.delete) {
    await deletePrefix(store, item.prefix);
    deps.log.info({ target: target.name, prefix: item.prefix, reason: item.reason }, 'garbage collected');
  }
  if (context.deleteUnknown && entry.unknown.length > 0) {
    const doomed = entry.unknown.map((item) => item.prefix);
    context.beforeDeletingUnknown?.(target.name, doomed);
    for (const prefix of doomed) {
      await deletePrefix(store, prefix);
      entry.unknownDeleted.push(prefix);
      deps.log.info({ target: target.name, prefix }, 'unknown complete backup deleted on request');
    }
    await forgetUnknownBackups(deps.db, target.id, doomed);
  }
  await recordUnknownBackups(
    deps.db,
    target.id,
    entry.unknown.filter((item) => !entry.unknownDeleted.includes(item.prefix)),
  );
}

/**
 * Aborts the multipart uploads a dead runner left (recorded on its run as upload_started with
 * no upload_completed / upload_aborted after it), and records each abort on the run so that
 * the next pass does not ask again. No grace period: a run that is no longer active cannot
 * finish an upload that counts (a zombie runner still sending parts is refused, as it should be).
 */
async function abortLeftUploads(deps: { db: Queryable; log: Logger }, target: TargetRecord, store: Store, entry: TargetPruneReport, dryRun: boolean): Promise<void> {
  for (const upload of await pendingUploads(deps.db, target.id)) {
    // The record comes from a runner: only an upload inside that run's own artifact folder of
    // the target's store is ever aborted on its word.
    if (upload.storeUrl !== store.url || artifactOfKey(target.name, upload.key)?.runId !== upload.runId) {
      entry.warnings.push(
        `run ${upload.runId} recorded a multipart upload ${upload.uploadId} of ${upload.key} in ${upload.storeUrl}, outside its artifact folder in the target's store: left alone`,
      );
      continue;
    }
    if (dryRun) {
      entry.uploads.push({ runId: upload.runId, key: upload.key, uploadId: upload.uploadId, result: 'pending' });
      continue;
    }
    if (!store.abortMultipartUpload) continue;
    const result = await store.abortMultipartUpload(upload.key, upload.uploadId);
    await appendRunEvent(deps.db, {
      runId: upload.runId,
      kind: 'upload_aborted',
      message: `garbage collection aborted the multipart upload of ${upload.key} its runner left unfinished${result === 'gone' ? ' (the store no longer knew it)' : ''}`,
      data: { storeUrl: upload.storeUrl, key: upload.key, uploadId: upload.uploadId, by: 'garbage-collection', result },
    });
    entry.uploads.push({ runId: upload.runId, key: upload.key, uploadId: upload.uploadId, result });
    deps.log.info({ target: target.name, runId: upload.runId, key: upload.key, uploadId: upload.uploadId, result }, 'left multipart upload aborted');
  }
}

/** The first error of a report, for an exit code. */
export function firstPruneError(report: PruneReport): BackstopError | null {
  const failed = report.targets.find((target) => target.error);
  if (!failed?.error) return null;
  return new BackstopError(failed.error.code, `Prune of target ${failed.target} failed: ${failed.error.message}`);
}
