import { randomInt } from 'node:crypto';
import { bigIntToLsn, lsnToBigInt } from '../core/changeSegment.ts';
import { describeError } from '../core/errors.ts';
import type { Manifest } from '../core/manifest.ts';
import { restoreWindows } from '../core/planPointInTime.ts';
import { microsToIso } from '../core/restorePoint.ts';
import type { PgToolSearch } from '../pgtools/findPgTools.ts';
import type { AgeIdentity } from '../pipeline/age.ts';
import { restoreArtifact } from '../pipeline/restore.ts';
import { allowReplicaSessions, createScratchDatabase, type ScratchServer } from '../pipeline/scratchDatabase.ts';
import { countListedTables } from '../pipeline/sourceSnapshot.ts';
import type { TableMismatch, VerifyResult } from '../pipeline/verify.ts';
import type { Store } from '../storage/store.ts';
import { prepareReplay } from './pointInTimeReplay.ts';
import { listStoredSegments } from './segmentFiles.ts';
import { listStoredBases } from './storedBases.ts';

/** Where a drill of a continuous base replayed to, and what it checked there. */
export interface DrillPoint {
  lsn: string;
  committedAt: string | null;
  transactions: number;
  segments: number;
  /**
   * The next base backup of the same slot, when the segments reach it: the replay was carried
   * on to its consistent LSN and every followed table compared with the counts (and checksums,
   * when it recorded them) that base's own dump recorded. Null when there is none yet, or one
   * of the two bases predates the record of the tables its stream follows.
   */
  laterBase: { runId: string; lsn: string; transactions: number; tables: number; checksums: boolean } | null;
}

type Manifested = Manifest & { continuous: NonNullable<Manifest['continuous']> };
type Prepared = Awaited<ReturnType<typeof prepareReplay>>;

/**
 * A drill of a continuous target's base backup: the base restored into a scratch database,
 * then its segments replayed to a random point of its window (the end of a segment chosen at
 * random), and every table's count compared with what the base and the replay say it must be
 * there: the base's count plus the replay's inserts minus its deletes (from the last truncate).
 * That shows every change was applied and touched the rows it should have, but it is computed
 * from the same segments the replay read: a change the streamer never stored would go unseen.
 *
 * So, when a later base backup of the same slot exists and the segments reach it, the replay
 * goes on to exactly that base's consistent LSN, where the two must agree, and every table
 * both bases' publications held is compared with the later base's own counts and checksums —
 * figures its dump took from the source at that LSN, independently of the change archive.
 *
 * Everything comes from the store alone (the key layout), so a remote runner needs nothing of
 * the catalog; each segment is checked against its manifest as any restore does, all of them
 * before the scratch database is touched. A base with no segment after it yet is drilled as a
 * plain backup.
 */
export async function drillToPoint(input: {
  store: Store;
  prefix: string;
  manifest: Manifested;
  base: { runId: string; targetName: string; targetId: string; finishedAt: string };
  scratchServer: ScratchServer;
  identities?: AgeIdentity[];
  pgTools?: PgToolSearch;
  signal: AbortSignal;
  onEvent?: (kind: string, message: string, data?: Record<string, unknown>) => void;
}): Promise<VerifyResult & { point: DrillPoint | null }> {
  const started = performance.now();
  const checks = { digests: false, restore: false, rows: false, checksums: false };
  const done = (status: VerifyResult['status'], error: VerifyResult['error'], point: DrillPoint | null, mismatches: TableMismatch[] = []) => ({
    status,
    checks,
    tables: input.manifest.tables.length,
    mismatches,
    error,
    durationMs: Math.round(performance.now() - started),
    point,
  });
  const baseLsn = lsnToBigInt(input.manifest.continuous.consistentLsn);
  const segments = await listStoredSegments(input.store, input.base.targetName, input.base.targetId);
  const [window] = restoreWindows(
    [{ runId: input.base.runId, slot: input.manifest.continuous.slot, baseLsn: input.manifest.continuous.consistentLsn, finishedAt: input.base.finishedAt }],
    segments.map(({ manifestKey, manifest }) => ({ manifestKey, ...manifest })),
  );
  const chain = window!.chain;
  const byKey = new Map(segments.map((segment) => [segment.manifestKey, segment]));
  const stored = (from: number, to: number) => chain.slice(from, to).map((summary) => byKey.get(summary.manifestKey)!);

  const later = await laterBaseReached(input, chain);
  // A random segment end before the later base (a restore past it would start from that base).
  const candidates = chain.flatMap((segment, index) => (later === null || lsnToBigInt(segment.endLsn) < later.lsn ? [index] : []));
  const chosen = candidates.length === 0 ? -1 : candidates[randomInt(candidates.length)]!;
  const endLsn = chosen < 0 ? baseLsn : lsnToBigInt(chain[chosen]!.endLsn);

  const prepared: Prepared[] = [];
  let toPoint: Prepared;
  let toLater: Prepared | null = null;
  try {
    toPoint = await prepareReplay({
      store: input.store,
      segments: stored(0, chosen + 1),
      baseLsn,
      stop: { kind: 'lsn', lsn: endLsn },
      identities: input.identities,
      signal: input.signal,
    });
    prepared.push(toPoint);
    if (later) {
      // On from the point's last transaction to the last one before the later base's LSN
      // (a commit at that LSN is after its snapshot); earlier segments hold nothing further.
      const from = (toPoint.cut.lsn ?? baseLsn - 1n) + 1n;
      toLater = await prepareReplay({
        store: input.store,
        segments: stored(chosen + 1, later.chainEnd + 1),
        baseLsn: from,
        stop: { kind: 'lsn', lsn: later.lsn - 1n },
        identities: input.identities,
        signal: input.signal,
      });
      prepared.push(toLater);
    }
  } catch (error) {
    for (const replay of prepared) await replay.dispose();
    input.signal.throwIfAborted();
    const described = describeError(error);
    input.onEvent?.('verify_restore_failed', described.message);
    return done('failed', described, null);
  }
  const scratch = await createScratchDatabase(input.scratchServer);
  try {
    checks.digests = true;
    let point: DrillPoint;
    let applied: Awaited<ReturnType<Prepared['apply']>>;
    try {
      await allowReplicaSessions(scratch);
      await toPoint.check(scratch.url);
      await restoreArtifact({
        store: input.store,
        prefix: input.prefix,
        manifest: input.manifest,
        toUrl: scratch.url,
        noOwner: true,
        checkRows: false,
        identities: input.identities,
        pgTools: input.pgTools,
        signal: input.signal,
      });
      applied = await toPoint.apply({ databaseUrl: scratch.url, signal: input.signal });
      point = {
        lsn: bigIntToLsn(toPoint.cut.lsn ?? endLsn),
        committedAt: toPoint.cut.micros === null ? null : microsToIso(toPoint.cut.micros),
        transactions: applied.transactions,
        segments: chosen + 1,
        laterBase: null,
      };
    } catch (error) {
      return failedRestore(error);
    }
    checks.restore = true;
    input.onEvent?.(
      'verify_replayed',
      `replayed ${point.transactions} transaction(s) of ${point.segments} segment(s) to LSN ${point.lsn}${point.committedAt ? ` (${point.committedAt})` : ''}`,
      { ...point },
    );

    const expected = input.manifest.tables.map((table) => {
      const changes = applied.rowChanges[`${table.schema}.${table.name}`];
      return { schema: table.schema, name: table.name, rows: changes ? (changes.truncated ? 0 : table.rows) + changes.inserted - changes.deleted : table.rows };
    });
    const mismatches = await compareCounts(scratch.url, expected, false, input.signal);
    checks.rows = true;
    if (mismatches.length > 0) {
      return done('failed', mismatchError(`The point-in-time restore differs from what the base and the segments say`, mismatches, point.lsn), point, mismatches);
    }
    if (!later || !toLater) return done('passed', null, point);

    let onward: Awaited<ReturnType<Prepared['apply']>>;
    try {
      onward = await toLater.apply({ databaseUrl: scratch.url, signal: input.signal });
    } catch (error) {
      return failedRestore(error);
    }
    const checksums = later.tables.length > 0 && later.tables.every((table) => table.checksum !== undefined);
    point.laterBase = { runId: later.runId, lsn: bigIntToLsn(later.lsn), transactions: onward.transactions, tables: later.tables.length, checksums };
    input.onEvent?.(
      'verify_replayed',
      `replayed ${onward.transactions} more transaction(s) to LSN ${point.laterBase.lsn}, where base backup ${later.runId} was taken: comparing ${later.tables.length} table(s)${checksums ? ' with checksums' : ''}`,
      { laterBase: point.laterBase },
    );
    const againstLater = await compareCounts(scratch.url, later.tables, checksums, input.signal);
    checks.checksums = checksums;
    if (againstLater.length > 0) {
      return done(
        'failed',
        mismatchError(
          `Replayed to where base backup ${later.runId} was taken, the restore differs from what that backup's own dump recorded from the source`,
          againstLater,
          point.laterBase.lsn,
        ),
        point,
        againstLater,
      );
    }
    return done('passed', null, point);
  } finally {
    for (const replay of prepared) await replay.dispose();
    await scratch.drop().catch(() => {});
  }

  function failedRestore(error: unknown) {
    input.signal.throwIfAborted();
    const described = describeError(error);
    input.onEvent?.('verify_restore_failed', described.message);
    return done('failed', described.code === 'ARTIFACT_CORRUPT' ? described : { code: 'RESTORE_FAILED', message: described.message }, null);
  }
}

/**
 * The next base of the same slot whose consistent LSN the segments reach, with the tables to
 * compare there: those both bases' publications held (a table published later was not followed
 * from the first base; one unpublished since, not to the second).
 */
async function laterBaseReached(
  input: { store: Store; manifest: Manifested; base: { runId: string; targetName: string; targetId: string } },
  chain: ReadonlyArray<{ endLsn: string }>,
): Promise<{ runId: string; lsn: bigint; chainEnd: number; tables: Manifest['tables'] } | null> {
  const baseLsn = lsnToBigInt(input.manifest.continuous.consistentLsn);
  const bases = await listStoredBases(input.store, { name: input.base.targetName, id: input.base.targetId }, input.manifest.continuous.slot);
  const next = bases.find((base) => base.manifest.runId !== input.base.runId && lsnToBigInt(base.manifest.continuous.consistentLsn) > baseLsn);
  if (!next) return null;
  const lsn = lsnToBigInt(next.manifest.continuous.consistentLsn);
  const chainEnd = chain.findIndex((segment) => lsnToBigInt(segment.endLsn) >= lsn);
  const followedFirst = input.manifest.continuous.tables;
  const followedLater = next.manifest.continuous.tables;
  if (chainEnd < 0 || !followedFirst || !followedLater) return null;
  const followed = new Set(followedFirst.filter((name) => followedLater.includes(name)));
  return { runId: next.manifest.runId, lsn, chainEnd, tables: next.manifest.tables.filter((table) => followed.has(`${table.schema}.${table.name}`)) };
}

async function compareCounts(
  url: string,
  tables: ReadonlyArray<{ schema: string; name: string; rows: number; checksum?: string }>,
  checksums: boolean,
  signal: AbortSignal,
): Promise<TableMismatch[]> {
  const counted = await countListedTables(url, tables, { checksums, signal, connections: 2 });
  const mismatches: TableMismatch[] = [];
  for (const table of tables) {
    const name = `${table.schema}.${table.name}`;
    const actual = counted.get(name);
    const rowsDiffer = (actual?.rows ?? null) !== table.rows;
    const checksumDiffers = checksums && actual?.checksum !== table.checksum;
    if (rowsDiffer || checksumDiffers) {
      mismatches.push({
        table: name,
        expectedRows: table.rows,
        actualRows: actual?.rows ?? null,
        ...(checksums ? { expectedChecksum: table.checksum, actualChecksum: actual?.checksum } : {}),
      });
    }
  }
  return mismatches;
}

function mismatchError(what: string, mismatches: TableMismatch[], lsn: string): { code: string; message: string } {
  const described = mismatches
    .map((m) =>
      m.actualRows !== m.expectedRows
        ? `${m.table}: ${m.actualRows ?? 'missing'} rows restored, ${m.expectedRows} expected`
        : `${m.table}: checksum ${m.actualChecksum ?? 'none'} restored, ${m.expectedChecksum} expected`,
    )
    .join('; ');
  return { code: 'VERIFY_MISMATCH', message: `${what} at LSN ${lsn}: ${described}.` };
}
