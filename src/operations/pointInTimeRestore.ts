import { z } from 'zod';
import { bigIntToLsn, compareLsn, lsnToBigInt, slotNameFor, type StoredSegment } from '../core/changeSegment.ts';
import { BackstopError, isBackstopError } from '../core/errors.ts';
import { parseInput } from '../core/inputProblems.ts';
import { planPointInTime, type ContinuousBase, type PointInTimePlan, type SegmentSummary } from '../core/planPointInTime.ts';
import { describeRestorePoint, microsToIso, parseRestorePoint, type RestorePoint } from '../core/restorePoint.ts';
import { prepareReplay } from '../continuous/pointInTimeReplay.ts';
import { checkSegmentBinding, listStoredSegments, parseSegmentManifest } from '../continuous/segmentFiles.ts';
import { listChangeSegments, listContinuousBases } from '../db/changeSegments.ts';
import type { Queryable } from '../db/pool.ts';
import { findTargetWithSecret, targetNotFound, type TargetWithSecret } from '../db/targets.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';
import { parseIdentities, type AgeIdentity } from '../pipeline/age.ts';
import { readRunManifest } from '../pipeline/readRunManifest.ts';
import { openStore } from '../storage/openStore.ts';
import type { Store } from '../storage/store.ts';
import { findSucceededBackup } from './findSucceededBackup.ts';
import { prepareRestore, restoreAuditDetails, type PreparedRestore, type RestoreCaller, type RestoreExecution, type RestoreOutcome } from './prepareRestore.ts';
import { audited, auditSubject } from './recordAudit.ts';
import { restoreRequest } from './restoreRequest.ts';
import type { ReplayProgressReport } from './trackRestoreProgress.ts';
import { restoreIdentities } from './runCapabilities.ts';

/** A restore of a continuous target to a point in time: the restore's fields and the point. */
export const pointInTimeRestoreRequest = restoreRequest.extend({
  at: z.string().min(1).max(64).describe('The point: `latest`, an LSN (0/16B3748) or a time with its offset (2026-12-06T12:30:00Z).'),
});
export type PointInTimeRestoreRequest = z.input<typeof pointInTimeRestoreRequest>;

export interface PointInTimeOutcome extends RestoreOutcome {
  pointInTime: {
    at: string;
    baseRunId: string;
    baseLsn: string;
    slot: string;
    segments: number;
    transactions: number;
    /** Database transactions the replay committed, each holding whole source transactions. */
    batches: number;
    /** The last transaction replayed (or the base's LSN, when none was). */
    reachedLsn: string;
    /** Its commit time; null when only the base was restored. */
    reachedAt: string | null;
    sequencesSet: number;
    elapsedReplayMs: number;
    /** Tables the change stream does not carry: as of the base backup, not of the point. */
    notContinuouslyProtected: string[];
    /** Tables whose shape changed in the replayed range. */
    schemaChanges: string[];
  };
}

export interface PreparedPointInTimeRestore extends Omit<PreparedRestore, 'execute'> {
  point: RestorePoint;
  plan: PointInTimePlan;
  execute(execution?: RestoreExecution): Promise<PointInTimeOutcome>;
}

type Deps = Parameters<typeof prepareRestore>[0];

function summaryOf(segment: StoredSegment): SegmentSummary {
  const { manifest } = segment;
  return {
    manifestKey: segment.manifestKey,
    slot: manifest.slot,
    generation: manifest.generation,
    startLsn: manifest.startLsn,
    endLsn: manifest.endLsn,
    firstCommitAt: manifest.firstCommitAt,
    lastCommitAt: manifest.lastCommitAt,
    schemaChanges: manifest.schemaChanges,
  };
}

/**
 * The segments the catalog indexes; when they do not reach the point (rows lost, or a catalog
 * rebuilt by an import), and always for `latest`, the store's own segment manifests too,
 * found by the key layout.
 * Every manifest, from either, is parsed and bound to the target before it is believed.
 */
async function planWithSegments(db: Queryable, store: () => Promise<Store>, target: TargetWithSecret, bases: ContinuousBase[], point: RestorePoint) {
  const known = new Map<string, StoredSegment>();
  for (const row of await listChangeSegments(db, target.id)) {
    const segment = parseSegmentManifest(row.manifestKey, JSON.stringify(row.manifest));
    checkSegmentBinding(segment, { target: target.name, targetId: target.id });
    known.set(segment.manifestKey, segment);
  }
  const plan = (segments: Map<string, StoredSegment>) => planPointInTime(bases, [...segments.values()].map(summaryOf), point);
  const withStored = async () => {
    for (const segment of await listStoredSegments(await store(), target.name, target.id)) known.set(segment.manifestKey, segment);
    return { plan: plan(known), segments: known };
  };
  // `latest` is whatever the archive holds: the store is its truth, the catalog may lag it.
  if (point.kind === 'latest') return withStored();
  try {
    return { plan: plan(known), segments: known };
  } catch (error) {
    // A window of the catalog's rows that holds the point has no gap up to it; one that does
    // not may be missing rows the store has.
    if (!isBackstopError(error, 'POINT_NOT_RESTORABLE')) throw error;
    return withStored();
  }
}

/** The `restored` event's words: the point, where the replay reached, and into where. */
function describeReached(reached: PointInTimeOutcome['pointInTime'], destination: string): string {
  const commit = reached.reachedAt ? `, committed at ${reached.reachedAt}` : ' (the base backup itself: no later transaction is at or before the point)';
  return `restored to ${reached.at} into ${destination}: base backup ${reached.baseRunId}, then ${reached.transactions} transaction(s) replayed; reached LSN ${reached.reachedLsn}${commit}`;
}

/**
 * Tables that are in the destination but that logical decoding cannot follow: no primary key
 * and no other replica identity. `target add --continuous` leaves them out of the publication
 * by the same rule, so a point-in-time restore holds them as the base backup had them.
 */
async function tablesWithoutIdentity(databaseUrl: string): Promise<string[]> {
  const client = await connectDatabase(databaseUrl);
  try {
    const { rows } = await client.query<{ name: string }>(
      `select format('%s.%s', n.nspname, c.relname) as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
          and (c.relreplident = 'n' or (c.relreplident = 'd' and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)))
        order by 1`,
    );
    return rows.map((row) => row.name);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Restores a continuous target as it was at a point: the newest base backup whose window holds
 * the point, restored by the ordinary restore (with all of its checks, `prepareRestore`), then
 * the change segments' transactions after it up to the point (src/continuous/). The segments
 * are read and checked before the base restore starts: a damaged segment or a point the
 * archive cannot reach refuses the restore while the destination is untouched.
 */
export async function preparePointInTimeRestore(deps: Deps, targetName: string, request: PointInTimeRestoreRequest, caller: RestoreCaller): Promise<PreparedPointInTimeRestore> {
  const at = (request as { at?: unknown } | null)?.at;
  return audited(
    deps.db,
    caller.actor,
    {
      action: 'run.restore',
      // The target until the base backup is chosen; then, as for every restore, the run restored.
      subject: auditSubject(targetName),
      details: { ...restoreAuditDetails(request), ...(typeof at === 'string' ? { at: at.slice(0, 64) } : {}) },
      subjectOf: (restore) => restore.runId,
      detailsOf: (restore) => ({ restoreId: restore.restoreId, target: restore.target ?? targetName }),
    },
    () => prepare(deps, targetName, request, caller),
  );
}

async function prepare(deps: Deps, targetName: string, request: PointInTimeRestoreRequest, caller: RestoreCaller): Promise<PreparedPointInTimeRestore> {
  const parsed = parseInput(pointInTimeRestoreRequest, request);
  const point = parseRestorePoint(parsed.at);
  const target = await findTargetWithSecret(deps.db, targetName);
  if (!target) throw targetNotFound(targetName);
  const bases: ContinuousBase[] = (await listContinuousBases(deps.db, target.id)).map((row) => ({
    runId: row.runId,
    baseLsn: row.baseLsn,
    slot: row.slot ?? slotNameFor(target.id),
    finishedAt: row.finishedAt,
  }));
  if (bases.length === 0) {
    throw new BackstopError(
      'POINT_NOT_RESTORABLE',
      `Target "${target.name}" has no succeeded base backup of a continuous target: nothing is restorable to a point in time. Make it continuous (\`backstop target add --continuous\`) and let its first base backup finish, or restore a backup by its run id.`,
    );
  }
  let openedStore: Store | null = null;
  const store = async () => (openedStore ??= await openStore(target.storeUrl));
  try {
    const { plan, segments } = await planWithSegments(deps.db, store, target, bases, point);
    const baseRun = await findSucceededBackup(deps.db, plan.window.base.runId, 'restored');
    const { at: _at, ...baseRequest } = parsed;
    const base = await prepareRestore(deps, baseRun.id, baseRequest, caller, { at: describeRestorePoint(point), audit: false });
    const identities: AgeIdentity[] | undefined =
      caller.via === 'api' ? await restoreIdentities(deps.config, baseRun, parsed.identity) : parsed.identity === undefined ? undefined : parseIdentities(parsed.identity);

    const execute = async (execution: RestoreExecution = {}): Promise<PointInTimeOutcome> => {
      const signal = execution.signal ?? new AbortController().signal;
      let replay: Awaited<ReturnType<typeof prepareReplay>> | null = null;
      let reached: PointInTimeOutcome['pointInTime'] | null = null;
      // Both stages are the base restore's own, so that a refusal of the segments, a failed
      // replay and the point reached are all recorded on the base run as this restore's outcome.
      const before = async () => {
        // The catalog's base LSN must be what the base backup's own manifest says it was dumped at.
        const baseStore = await openStore(baseRun.artifact.storeUrl);
        const { manifest } = await readRunManifest(baseStore, baseRun).finally(() => baseStore.close());
        if (!manifest.continuous || compareLsn(manifest.continuous.consistentLsn, plan.window.base.baseLsn) !== 0 || manifest.continuous.slot !== plan.window.base.slot) {
          throw new BackstopError(
            'ARTIFACT_REJECTED',
            `Backup ${baseRun.id} is recorded as a base at LSN ${plan.window.base.baseLsn} of slot ${plan.window.base.slot}, but its manifest says ${manifest.continuous ? `${manifest.continuous.consistentLsn} of ${manifest.continuous.slot}` : 'it is no base backup'}. Nothing was restored; check who can write to the catalog.`,
          );
        }
        replay = await prepareReplay({
          store: await store(),
          segments: plan.segments.map((summary) => segments.get(summary.manifestKey)!),
          baseLsn: lsnToBigInt(plan.window.base.baseLsn),
          stop: plan.stop,
          identities,
          signal,
        });
        await replay.check(parsed.databaseUrl);
      };
      const after = async (progress: ReplayProgressReport) => {
        const prepared = replay!;
        const started = performance.now();
        const total = prepared.cut.transactions;
        // Only a replay shows: a point at the base itself has nothing to replay.
        if (total > 0) progress.replaying(0, total);
        const applied = await prepared.apply({
          databaseUrl: parsed.databaseUrl,
          signal,
          onTransaction: (count) => progress.replaying(count, total),
        });
        const usedSegments = prepared.cut.segment === null ? 0 : prepared.cut.segment + 1;
        reached = {
          at: describeRestorePoint(point),
          baseRunId: baseRun.id,
          baseLsn: plan.window.base.baseLsn,
          slot: plan.window.base.slot,
          segments: usedSegments,
          transactions: applied.transactions,
          batches: applied.batches,
          reachedLsn: prepared.cut.lsn === null ? plan.window.base.baseLsn : bigIntToLsn(prepared.cut.lsn),
          reachedAt: prepared.cut.micros === null ? null : microsToIso(prepared.cut.micros),
          sequencesSet: applied.sequencesSet,
          elapsedReplayMs: Math.round(performance.now() - started),
          notContinuouslyProtected: await tablesWithoutIdentity(parsed.databaseUrl),
          schemaChanges: [...new Set(plan.segments.slice(0, usedSegments).flatMap((segment) => segment.schemaChanges))],
        };
        return { message: describeReached(reached, base.destination), data: { pointInTime: reached } };
      };
      try {
        const outcome = await base.execute({ ...execution, stages: { before, after } });
        return { ...outcome, pointInTime: reached! };
      } finally {
        await (replay as Awaited<ReturnType<typeof prepareReplay>> | null)?.dispose();
        await openedStore?.close();
        openedStore = null;
      }
    };
    await (openedStore as Store | null)?.close();
    openedStore = null;
    return { runId: base.runId, restoreId: base.restoreId, target: target.name, destination: base.destination, point, plan, execute };
  } catch (error) {
    await (openedStore as Store | null)?.close();
    throw error;
  }
}
