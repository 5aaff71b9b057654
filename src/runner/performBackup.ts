import { randomBytes } from 'node:crypto';
import type { Artifact } from '../core/artifact.ts';
import { createSlotWithSnapshot, type SlotSnapshot } from '../continuous/slotSnapshot.ts';
import { publishedTables, slotExists, withSource } from '../continuous/sourceSetup.ts';
import type { ClaimedRun } from '../db/runRecords.ts';
import { artifactProfiles } from '../pipeline/artifactProfiles.ts';
import type { BackupProgress, ContinuousBase, RunEventSink } from '../pipeline/backup.ts';
import { parseCompression } from '../pipeline/compression.ts';
import type { Store } from '../storage/store.ts';
import type { RunnerDeps } from './runnerDeps.ts';
import type { RunnerTarget } from './runnerCatalog.ts';

export interface PerformOptions {
  signal: AbortSignal;
  onProgress: (progress: BackupProgress) => void;
  onEvent: RunEventSink;
}

/** The work of a backup run: the target's profile decides how it is dumped. */
export async function performBackup(deps: RunnerDeps, run: ClaimedRun, target: RunnerTarget, store: Store, options: PerformOptions): Promise<Artifact> {
  const base = target.continuous && target.options.profile !== 'server' ? await openBase(target.databaseUrl, target.continuous.slot, options.onEvent) : null;
  try {
    return await artifactProfiles[target.options.profile ?? 'default'].backup({
      runId: run.id,
      attempt: run.attempt,
      targetName: run.targetName,
      targetId: run.targetId,
      createdAt: run.createdAt,
      databaseUrl: target.databaseUrl,
      store,
      compression: typeof target.options.compression === 'string' ? parseCompression(target.options.compression) : undefined,
      encryptTo: target.options.encryptTo,
      checksums: target.options.checksums === true,
      // Default profile only: pg_dump streams at once (the server profile's are in `server`).
      jobs: target.options.jobs,
      // Supabase profile only (the CLI refuses it elsewhere): copy Storage objects too.
      withStorage: target.options.withStorage === true,
      // Server profile only: which databases and globals, how many databases at once.
      server: target.options.server,
      pgTools: deps.config.pgTools,
      signal: options.signal,
      onProgress: options.onProgress,
      onEvent: options.onEvent,
      ...(base ? { continuousBase: base.continuousBase } : {}),
    });
  } finally {
    // Only now: the exported snapshot lives as long as the replication connection that made it.
    await base?.slot.release();
  }
}

/**
 * A continuous target's base backup takes its snapshot from a temporary slot of its own: its
 * consistent point is a new point where the target's permanent slot's stream takes over (see
 * operations/targets/continuity.ts for why no change is missed). That holds only when the
 * permanent slot exists before the temporary one is begun, so it is checked first; without it
 * the backup is an ordinary one, said in an event (the stream's window shows the break).
 */
async function openBase(databaseUrl: string, slot: string, onEvent: RunEventSink): Promise<{ slot: SlotSnapshot; continuousBase: ContinuousBase } | null> {
  // The publication has the slot's name (operations/targets/continuity.ts).
  const source = await withSource(databaseUrl, async (client) => ((await slotExists(client, slot)) ? { tables: await publishedTables(client, slot) } : null));
  if (!source) {
    await onEvent('continuous_base_skipped', `the replication slot ${slot} is not on the source: this backup is not a base of point-in-time restore`, { slot });
    return null;
  }
  // Temporary: dropped with its connection, whatever ends this process.
  const temporary = await createSlotWithSnapshot(databaseUrl, `${slot}_b${randomBytes(4).toString('hex')}`, { temporary: true });
  await onEvent('continuous_base', `base backup at LSN ${temporary.consistentLsn}, where the stream of ${slot} takes over`, { slot, consistentLsn: temporary.consistentLsn });
  return {
    slot: temporary,
    continuousBase: { slot, snapshot: temporary.snapshot, consistentLsn: temporary.consistentLsn, ...(source.tables !== null && { tables: source.tables }) },
  };
}
