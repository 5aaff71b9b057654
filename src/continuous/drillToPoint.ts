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

/** Where a drill of a continuous base replayed to, and what it checked the counts against. */
export interface DrillPoint {
  lsn: string;
  committedAt: string | null;
  transactions: number;
  segments: number;
  /** `segment`: the row counts the streamer recorded; `replay`: the base's counts plus the replay's inserts, minus its deletes. */
  expected: 'segment' | 'replay';
}

/**
 * A drill of a continuous target's base backup: the base restored into a scratch database,
 * then its segments replayed to a random point of its window — the end of a segment chosen at
 * random, where the streamer's row counts (when it recorded them) describe every table — and
 * every table's row count compared with what it must be there. Without recorded counts, that
 * is the base's count plus the replay's inserts minus its deletes (from the last truncate):
 * the replay applied every change it read, in full, and touched the rows it should have.
 *
 * The segments come from the store alone (the key layout), so a remote runner needs nothing
 * of the catalog; each is checked against its manifest as any restore does. A base with no
 * segment after it yet is drilled as a plain backup.
 */
export async function drillToPoint(input: {
  store: Store;
  prefix: string;
  manifest: Manifest & { continuous: NonNullable<Manifest['continuous']> };
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
  const segments = await listStoredSegments(input.store, input.base.targetName, input.base.targetId);
  const [window] = restoreWindows(
    [{ runId: input.base.runId, slot: input.manifest.continuous.slot, baseLsn: input.manifest.continuous.consistentLsn, finishedAt: input.base.finishedAt }],
    segments.map(({ manifestKey, manifest }) => ({ manifestKey, ...manifest })),
  );
  const chosen = window!.chain.length === 0 ? -1 : randomInt(window!.chain.length);
  const byKey = new Map(segments.map((segment) => [segment.manifestKey, segment]));
  const chain = window!.chain.slice(0, chosen + 1).map((summary) => byKey.get(summary.manifestKey)!);
  // The streamer's counts after the chosen segment's last transaction, when it recorded them.
  const recorded = chosen >= 0 ? chain.at(-1)!.manifest.rowCounts : undefined;
  const endLsn = chosen < 0 ? lsnToBigInt(input.manifest.continuous.consistentLsn) : lsnToBigInt(window!.chain[chosen]!.endLsn);

  let replay: Awaited<ReturnType<typeof prepareReplay>>;
  try {
    replay = await prepareReplay({
      store: input.store,
      segments: chain,
      baseLsn: lsnToBigInt(input.manifest.continuous.consistentLsn),
      stop: { kind: 'lsn', lsn: endLsn },
      identities: input.identities,
      signal: input.signal,
    });
  } catch (error) {
    input.signal.throwIfAborted();
    const described = describeError(error);
    input.onEvent?.('verify_restore_failed', described.message);
    return done('failed', described, null);
  }
  const scratch = await createScratchDatabase(input.scratchServer);
  try {
    checks.digests = true;
    let point: DrillPoint;
    let applied: Awaited<ReturnType<typeof replay.apply>>;
    try {
      await allowReplicaSessions(scratch);
      await replay.check(scratch.url);
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
      applied = await replay.apply({ databaseUrl: scratch.url, signal: input.signal });
      point = {
        lsn: bigIntToLsn(replay.cut.lsn ?? endLsn),
        committedAt: replay.cut.micros === null ? null : microsToIso(replay.cut.micros),
        transactions: applied.transactions,
        segments: chain.length,
        expected: recorded ? 'segment' : 'replay',
      };
    } catch (error) {
      input.signal.throwIfAborted();
      const described = describeError(error);
      input.onEvent?.('verify_restore_failed', described.message);
      return done('failed', described.code === 'ARTIFACT_CORRUPT' ? described : { code: 'RESTORE_FAILED', message: described.message }, null);
    }
    checks.restore = true;
    input.onEvent?.(
      'verify_replayed',
      `replayed ${point.transactions} transaction(s) of ${point.segments} segment(s) to LSN ${point.lsn}${point.committedAt ? ` (${point.committedAt})` : ''}`,
      { ...point },
    );

    const expected = input.manifest.tables.map((table) => {
      const name = `${table.schema}.${table.name}`;
      if (recorded && recorded[name] !== undefined) return { table, rows: recorded[name]! };
      const changes = applied.rowChanges[name];
      return { table, rows: changes ? (changes.truncated ? 0 : table.rows) + changes.inserted - changes.deleted : table.rows };
    });
    const counted = await countListedTables(scratch.url, input.manifest.tables, { signal: input.signal, connections: 2 });
    const mismatches: TableMismatch[] = [];
    for (const { table, rows } of expected) {
      const name = `${table.schema}.${table.name}`;
      const actual = counted.get(name)?.rows ?? null;
      if (actual !== rows) mismatches.push({ table: name, expectedRows: rows, actualRows: actual });
    }
    checks.rows = true;
    if (mismatches.length > 0) {
      const described = mismatches.map((m) => `${m.table}: ${m.actualRows ?? 'missing'} rows restored, ${m.expectedRows} expected at LSN ${point.lsn}`).join('; ');
      return done('failed', { code: 'VERIFY_MISMATCH', message: `The point-in-time restore differs from what the base and the segments say: ${described}.` }, point, mismatches);
    }
    return done('passed', null, point);
  } finally {
    await replay.dispose();
    await scratch.drop().catch(() => {});
  }
}
