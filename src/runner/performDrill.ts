import fs from 'node:fs/promises';
import type { RunnerOutcome } from '../core/runState.ts';
import { BackstopError, describeError } from '../core/errors.ts';
import { assertSucceededBackup } from '../core/succeededBackup.ts';
import { ensureEmbeddedPostgres, scratchClusterHome } from '../db/embeddedPostgres.ts';
import type { ClaimedRun } from '../db/runRecords.ts';
import { parseIdentities } from '../pipeline/age.ts';
import { readRunManifest } from '../pipeline/readRunManifest.ts';
import type { RestoreProgress } from '../pipeline/restoreInput.ts';
import { verifyArtifact, type VerifyResult } from '../pipeline/verify.ts';
import { drillToPoint } from '../continuous/drillToPoint.ts';
import { openStore } from '../storage/openStore.ts';
import { runnerCatalogOf, type RunnerDeps } from './runnerDeps.ts';

export interface DrillOptions {
  signal: AbortSignal;
  onEvent: (kind: string, message: string, data?: Record<string, unknown>) => void;
  checksums?: boolean;
  afterRestore?: (scratchUrl: string) => Promise<void>;
  onProgress?: (progress: RestoreProgress) => void;
}

/**
 * The work of a verification run: a restore drill of its subject backup. A drill that finds a
 * problem is a finding, not a crash: the run ends `failed` with the drill's error, and the
 * result is recorded on the backup run either way.
 */
export async function performDrill(
  deps: RunnerDeps,
  run: ClaimedRun,
  options: DrillOptions,
): Promise<{ outcome: RunnerOutcome; error: { code: string; message: string } | null; result: VerifyResult | null }> {
  if (!run.subjectRunId) throw new BackstopError('INVALID_INPUT', `Run ${run.id} is a verification without a backup to verify.`);
  const catalog = runnerCatalogOf(deps);
  const subject = assertSucceededBackup(await catalog.getRun(run.subjectRunId), 'verified');
  const store = await openStore(subject.artifact.storeUrl);
  try {
    let result: VerifyResult;
    try {
      // The catalog's row alone proves nothing: the manifest must be this backup's own.
      const { manifest } = await readRunManifest(store, subject);
      const identities = deps.config.identityFile ? parseIdentities(await fs.readFile(deps.config.identityFile, 'utf8')) : undefined;
      // Never the catalog's cluster: by default Backstop's own scratch cluster, whose superuser
      // holds nothing else; the restore itself runs as a role made for the drill (see verify.ts).
      const scratchServer = deps.config.scratchUrl
        ? { url: deps.config.scratchUrl, privilegedOk: deps.config.scratchPrivilegedOk }
        : { url: (await ensureEmbeddedPostgres(scratchClusterHome(deps.config.home))).url(), dedicated: true };
      options.onEvent('verify_started', `restore drill of backup ${subject.id}`, { subjectRunId: subject.id });
      // A continuous target's base: restored to a random point of its window (drillToPoint).
      const continuous = manifest.continuous;
      result = continuous
        ? await drillToPoint({
            store,
            prefix: subject.artifact.prefix,
            manifest: { ...manifest, continuous },
            base: { runId: subject.id, targetName: subject.targetName, targetId: subject.targetId, finishedAt: subject.finishedAt ?? subject.createdAt },
            scratchServer,
            identities,
            pgTools: deps.config.pgTools,
            signal: options.signal,
            onEvent: options.onEvent,
          })
        : await verifyArtifact({
            store,
            prefix: subject.artifact.prefix,
            manifest,
            scratchServer,
            ...(manifest.profile === 'supabase' ? { sourceUrl: (await catalog.target(run)).databaseUrl } : {}),
            checksums: options.checksums ?? Boolean(manifest.tables.length > 0 && manifest.tables.every((table) => table.checksum !== undefined)),
            identities,
            pgTools: deps.config.pgTools,
            signal: options.signal,
            afterRestore: options.afterRestore,
            onEvent: options.onEvent,
            onProgress: options.onProgress,
          });
    } catch (error) {
      options.signal.throwIfAborted();
      const described = describeError(error);
      // Findings about the artifact itself fail the drill; anything else is a crash of the drill.
      const findings = new Set(['ARTIFACT_CORRUPT', 'ARTIFACT_REJECTED', 'ARTIFACT_UNSAFE', 'STORE_READ_FAILED']);
      if (!findings.has(described.code)) throw error;
      result = {
        status: 'failed',
        checks: { digests: false, restore: false, rows: false, checksums: false },
        tables: 0,
        mismatches: [],
        error: described,
        durationMs: 0,
      };
    }
    await catalog.recordVerification(subject.id, { runId: run.id, ...result });
    options.onEvent(`verify_${result.status}`, result.error?.message ?? `drill passed: ${result.tables} tables match`, {
      subjectRunId: subject.id,
      mismatches: result.mismatches,
    });
    return { outcome: result.status === 'passed' ? 'succeeded' : 'failed', error: result.error, result };
  } finally {
    await store.close();
  }
}
