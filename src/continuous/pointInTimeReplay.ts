import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findReplayCut, type PointInTimePlan, type ReplayCut } from '../core/planPointInTime.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';
import type { AgeIdentity } from '../pipeline/age.ts';
import type { Store } from '../storage/store.ts';
import { loadSegment, type LoadedSegment } from './readSegment.ts';
import { assertReplayAllowed, replaySegments, type ReplayBound, type ReplayResult } from './replaySegments.ts';
import type { StoredSegment } from '../core/changeSegment.ts';

/** Segments read, checked and spooled, and where their replay ends. */
export interface PreparedReplay {
  loaded: LoadedSegment[];
  cut: ReplayCut;
  baseLsn: bigint;
  /** Refuses now a destination that would refuse the replay (its role may not set session_replication_role). */
  check(databaseUrl: string): Promise<void>;
  apply(input: { databaseUrl: string; signal: AbortSignal; onTransaction?: (applied: number) => void; bound?: ReplayBound }): Promise<ReplayResult>;
  /** Removes the spooled segments. */
  dispose(): Promise<void>;
}

/**
 * Reads every segment a restore needs before anything is written to the destination: a
 * damaged or altered segment refuses the restore while the destination is still untouched,
 * and the exact last transaction at or before the point is known (its commit time is in the
 * segment's lines, not its manifest).
 */
export async function prepareReplay(input: {
  store: Store;
  segments: StoredSegment[];
  baseLsn: bigint;
  stop: PointInTimePlan['stop'];
  identities?: AgeIdentity[];
  signal: AbortSignal;
  tmpDir?: string;
}): Promise<PreparedReplay> {
  const spoolDir = await fs.mkdtemp(path.join(input.tmpDir ?? os.tmpdir(), 'backstop-segments-'));
  const dispose = () => fs.rm(spoolDir, { recursive: true, force: true });
  try {
    const loaded: LoadedSegment[] = [];
    for (const segment of input.segments) {
      loaded.push(await loadSegment({ store: input.store, segment, spoolDir, identities: input.identities, signal: input.signal }));
    }
    const cut = findReplayCut(
      loaded.map((segment) => segment.transactions),
      input.baseLsn,
      input.stop,
    );
    return {
      loaded,
      cut,
      baseLsn: input.baseLsn,
      dispose,
      async check(databaseUrl) {
        if (cut.lsn === null) return;
        const client = await connectDatabase(databaseUrl);
        try {
          await assertReplayAllowed(client);
        } finally {
          await client.end().catch(() => {});
        }
      },
      async apply({ databaseUrl, signal, onTransaction, bound }) {
        if (cut.lsn === null) return { transactions: 0, changes: 0, sequencesSet: 0, sequencesMissing: [], statements: 0, rowChanges: {}, batches: 0 };
        const client = await connectDatabase(databaseUrl);
        try {
          return await replaySegments({ client, segments: loaded, baseLsn: input.baseLsn, cutLsn: cut.lsn, sequencesFrom: cut.segment, signal, bound, onTransaction });
        } finally {
          await client.end().catch(() => {});
        }
      },
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}
