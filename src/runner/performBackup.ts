import type { Artifact } from '../core/artifact.ts';
import type { ClaimedRun } from '../db/runRecords.ts';
import { artifactProfiles } from '../pipeline/artifactProfiles.ts';
import type { BackupProgress, RunEventSink } from '../pipeline/backup.ts';
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
export function performBackup(deps: RunnerDeps, run: ClaimedRun, target: RunnerTarget, store: Store, options: PerformOptions): Promise<Artifact> {
  return artifactProfiles[target.options.profile ?? 'default'].backup({
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
  });
}
