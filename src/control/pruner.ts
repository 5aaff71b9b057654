import type { Logger } from 'pino';
import { BackstopError, describeError, type ErrorCode } from '../core/errors.ts';
import { artifactOfKey, groupArtifactPrefixes, planGarbage, type GarbageReason } from '../core/planGarbage.ts';
import { describeReason, planRetention, validateRetentionPolicy, type RetentionPolicy } from '../core/planRetention.ts';
import type { Queryable } from '../db/pool.ts';
import { databaseNow, deletePrunedRun, listRetainedBackups, markRunPruned, pendingUploads, runsForGarbage } from '../db/retention.ts';
import { appendRunEvent } from '../db/runs.ts';
import { getTarget, listTargets, type TargetRecord } from '../db/targets.ts';
import { deletePrefix } from '../pipeline/backup.ts';
import { openStore } from '../storage/openStore.ts';
import type { Store } from '../storage/store.ts';
import { startPeriodicTask } from './periodicTask.ts';

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
  garbage: { prefix: string; reason: GarbageReason; objects: number; newestAt: string }[];
  /** Leftovers still inside the grace period. */
  garbageWaiting: number;
  /**
   * Multipart uploads that runs no longer active left unfinished (their runner died), aborted
   * (`gone`: the store no longer knew them). On a dry run: the ones that would be.
   */
  uploads: { runId: string; key: string; uploadId: string; result: 'aborted' | 'gone' | 'pending' }[];
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
 * leftovers in the target's store folder. Safe to run from several processes at once: every
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
        garbage: [],
        garbageWaiting: 0,
        uploads: [],
        warnings: [],
        error: null,
      };
      report.targets.push(entry);
      try {
        await applyRetention(deps, target, entry, { now, dryRun, storeFor });
        await collectGarbage(deps, target, entry, { now, dryRun, gracePeriodMs, storeFor });
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
    const candidates = backups
      .filter((backup) => backup.prunedAt === null)
      .map((backup) => ({ id: backup.id, takenAt: Date.parse(backup.takenAt), verified: backup.verified }));
    const plan = planRetention(candidates, policy, context.now);
    entry.keep = plan.keep.map((kept) => ({ id: kept.id, takenAt: byId.get(kept.id)!.takenAt, reasons: kept.reasons.map(describeReason) }));
    entry.delete = plan.delete.map((doomed) => ({ id: doomed.id, takenAt: byId.get(doomed.id)!.takenAt, prefix: byId.get(doomed.id)!.artifact.prefix }));
  }
  if (context.dryRun) return;
  const removeObjectsAndRow = async (runId: string) => {
    const { artifact } = byId.get(runId)!;
    // Order: row marked pruned (done by the caller) → objects → row. A crash in between
    // leaves a marked row that the next prune finishes; never a row without its objects
    // that still looks restorable.
    await deletePrefix(await context.storeFor(artifact.storeUrl), artifact.prefix);
    await deletePrunedRun(deps.db, runId);
  };
  for (const backup of interrupted) {
    await removeObjectsAndRow(backup.id);
    entry.resumed.push(backup.id);
  }
  for (const doomed of entry.delete) {
    if (!(await markRunPruned(deps.db, doomed.id))) {
      entry.refused.push(doomed.id);
      deps.log.warn({ target: target.name, runId: doomed.id }, 'retention: the catalog refused to prune this backup (now the newest or newest verified)');
      continue;
    }
    await removeObjectsAndRow(doomed.id);
    entry.deleted.push(doomed.id);
    deps.log.info({ target: target.name, runId: doomed.id, prefix: doomed.prefix }, 'retention: backup deleted');
  }
}

async function collectGarbage(
  deps: { db: Queryable; log: Logger },
  target: TargetRecord,
  entry: TargetPruneReport,
  context: ApplyContext & { gracePeriodMs: number },
) {
  const store = await context.storeFor(target.storeUrl);
  // The store is listed before the catalog is read: a run created in between is then at worst
  // unknown to this pass's listing, never a listed prefix judged against a stale catalog.
  const keys = [];
  for await (const object of store.list(`${target.name}/`)) keys.push({ key: object.key, lastModified: object.lastModified.getTime() });
  const prefixes = groupArtifactPrefixes(target.name, keys);
  const runs = await runsForGarbage(deps.db, [...new Set(prefixes.map((prefix) => prefix.runId))]);
  const plan = planGarbage(prefixes, runs, { now: context.now, gracePeriodMs: context.gracePeriodMs });
  entry.garbage = plan.delete.map((item) => ({
    prefix: item.prefix,
    reason: item.reason,
    objects: item.objects,
    newestAt: new Date(item.newestAt).toISOString(),
  }));
  entry.garbageWaiting = plan.waiting.length;
  entry.warnings.push(...plan.warnings);
  for (const warning of plan.warnings) deps.log.warn({ target: target.name }, warning);
  await abortLeftUploads(deps, target, store, entry, context.dryRun);
  if (context.dryRun) return;
  for (const item of plan.delete) {
    await deletePrefix(store, item.prefix);
    deps.log.info({ target: target.name, prefix: item.prefix, reason: item.reason }, 'garbage collected');
  }
}

/**
 * Aborts the multipart uploads a dead runner left (recorded on its run as upload_started with
 * no upload_completed / upload_aborted after it), and records each abort on the run so that
 * the next pass does not ask again. No grace period: a run that is no longer active cannot
 * finish an upload that counts (a zombie runner still sending parts is refused, as it should be).
 */
async function abortLeftUploads(
  deps: { db: Queryable; log: Logger },
  target: TargetRecord,
  store: Store,
  entry: TargetPruneReport,
  dryRun: boolean,
): Promise<void> {
  for (const upload of await pendingUploads(deps.db, target.id)) {
    // The record comes from a runner: only an upload inside that run's own artifact folder of
    // the target's store is ever aborted on its word.
    if (upload.storeUrl !== store.url || artifactOfKey(target.name, upload.key)?.runId !== upload.runId) {
      entry.warnings.push(`run ${upload.runId} recorded a multipart upload ${upload.uploadId} of ${upload.key} in ${upload.storeUrl}, outside its artifact folder in the target's store: left alone`);
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

export interface Pruner {
  pruneOnce(): Promise<PruneReport | null>;
  stop(): Promise<void>;
}

/** Prunes every target every `intervalMs` (for the server); passes never overlap. */
export function startPruner(
  deps: PruneDeps,
  options: { intervalMs?: number; gracePeriodMs?: number; firstPassAfterMs?: number } = {},
): Pruner {
  const intervalMs = options.intervalMs ?? 3_600_000;
  const log = deps.log.child({ component: 'pruner' });
  const prunePass = async (): Promise<PruneReport | null> => {
    try {
      const report = await pruneTargets({ ...deps, log }, { gracePeriodMs: options.gracePeriodMs });
      const deleted = report.targets.reduce((sum, target) => sum + target.deleted.length, 0);
      const garbage = report.targets.reduce((sum, target) => sum + target.garbage.length, 0);
      if (deleted + garbage > 0) log.info({ deleted, garbage }, 'prune pass done');
      return report;
    } catch (error) {
      log.warn({ err: error }, 'prune pass failed; will retry');
      return null;
    }
  };
  // The first pass comes soon after start, or a process restarted more often than the
  // interval would never prune.
  const task = startPeriodicTask(intervalMs, prunePass, { firstDelayMs: options.firstPassAfterMs ?? Math.min(intervalMs, 60_000) });
  return { pruneOnce: task.runOnce, stop: task.stop };
}

/** The first error of a report, for an exit code. */
export function firstPruneError(report: PruneReport): BackstopError | null {
  const failed = report.targets.find((target) => target.error);
  if (!failed?.error) return null;
  return new BackstopError(failed.error.code, `Prune of target ${failed.target} failed: ${failed.error.message}`);
}
