/**
 * One measured Backstop case in its own process, so that its peak RSS is its own: the case
 * comes in BACKSTOP_BENCH_CASE (JSON; it holds database passwords and age identities, which
 * must not show up in `ps`), the result goes to stdout as one JSON line.
 *
 * `ms` times the operation itself; the parent also times the whole process (Node start-up and
 * module loading included).
 */
import { randomUUID } from 'node:crypto';
import { backupDatabase } from '../src/pipeline/backup.ts';
import { backupParallel } from '../src/pipeline/backupParallel.ts';
import { parseIdentities } from '../src/pipeline/age.ts';
import type { CompressionSettings } from '../src/pipeline/compression.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { restoreArtifact } from '../src/pipeline/restore.ts';
import { openStore } from '../src/storage/openStore.ts';

export type CaseSpec =
  | {
      kind: 'backup';
      databaseUrl: string;
      storeUrl: string;
      target: string;
      compression: CompressionSettings;
      recipient?: string;
      /** Above 1: that many pg_dump streams (backupParallel); absent or 1: one archive. */
      jobs?: number;
    }
  | { kind: 'restore'; storeUrl: string; prefix: string; toUrl: string; jobs: number; identity?: string; tmpDir: string }
  /** Loads what a backup loads and does nothing: the RSS floor of the process. */
  | { kind: 'idle'; storeUrl: string };

export interface CaseResult {
  ms: number;
  maxRssKiB: number;
  /** User + system CPU of this process alone (zstd runs on its thread pool), not of the tools it ran. */
  selfCpuMs?: number;
  prefix?: string;
  storedBytes?: number;
  dumpBytes?: number;
  restoredBytes?: number;
  tablesChecked?: number;
  /** A restore's phases, ms from its start (see RestoreResult.timings). */
  timings?: { spooledMs: number; pgRestoreDoneMs: number; checkedMs: number };
}

async function runCase(spec: CaseSpec, signal: AbortSignal): Promise<Omit<CaseResult, 'maxRssKiB'>> {
  const store = await openStore(spec.storeUrl);
  try {
    const started = performance.now();
    switch (spec.kind) {
      case 'idle':
        return { ms: performance.now() - started };
      case 'backup': {
        const input = {
          runId: randomUUID(),
          attempt: 1,
          targetName: spec.target,
          createdAt: new Date().toISOString(),
          databaseUrl: spec.databaseUrl,
          store,
          compression: spec.compression,
          encryptTo: spec.recipient ? [spec.recipient] : [],
          signal,
        };
        const jobs = spec.jobs ?? 1;
        const artifact = jobs > 1 ? await backupParallel({ ...input, jobs }) : await backupDatabase(input);
        const ms = performance.now() - started;
        const { manifest } = await readManifest(store, artifact.prefix);
        const sum = (sizes: number[]) => sizes.reduce((total, size) => total + size, 0);
        return { ms, prefix: artifact.prefix, storedBytes: sum(artifact.files.map((file) => file.size)), dumpBytes: sum(manifest.files.map((file) => file.uncompressedSize)) };
      }
      case 'restore': {
        const { manifest } = await readManifest(store, spec.prefix);
        const result = await restoreArtifact({
          store,
          prefix: spec.prefix,
          manifest,
          toUrl: spec.toUrl,
          jobs: spec.jobs,
          identities: spec.identity ? parseIdentities(spec.identity) : [],
          tmpDir: spec.tmpDir,
          signal,
        });
        return { ms: performance.now() - started, restoredBytes: result.bytesRestored, tablesChecked: result.tablesChecked, ...(result.timings && { timings: result.timings }) };
      }
    }
  } finally {
    await store.close();
  }
}

const spec = JSON.parse(process.env.BACKSTOP_BENCH_CASE ?? 'null') as CaseSpec | null;
if (spec === null) {
  process.stderr.write('bench/runCase.ts is started by bench/backup.ts with BACKSTOP_BENCH_CASE set.\n');
  process.exitCode = 2;
} else {
  // Stopped by the bench (SIGTERM) or a Ctrl-C: the pipeline stops pg_dump / pg_restore, which
  // run in their own process groups and would otherwise outlive this process.
  const controller = new AbortController();
  for (const name of ['SIGINT', 'SIGTERM'] as const) process.once(name, () => controller.abort(new Error(`stopped by ${name}`)));
  const result = await runCase(spec, controller.signal);
  const usage = process.resourceUsage();
  const output: CaseResult = { ...result, maxRssKiB: usage.maxRSS, selfCpuMs: Math.round((usage.userCPUTime + usage.systemCPUTime) / 1000) };
  process.stdout.write(`${JSON.stringify(output)}\n`);
}
