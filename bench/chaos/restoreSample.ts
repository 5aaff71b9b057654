import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { CatalogRun, Violation } from './catalogChecks.ts';
import { query, withDatabase, type ChaosEnvironment } from './environment.ts';
import { compareFingerprints, tableFingerprints } from './fingerprints.ts';
import { measure } from './objectStores.ts';
import type { StoreView } from './storeChecks.ts';

/**
 * The strongest check of "succeeded": restore the backup with standard tools alone
 * (`age -d`, `zstd -d`, `pg_restore`; DESIGN.md invariant 8) into a scratch database and
 * compare every table, row by row, with the source it was taken from.
 */

export interface RestoreOutcome {
  runId: string;
  target: string;
  ok: boolean;
  detail: string;
  ms: number;
}

export async function restoreSample(
  runs: readonly CatalogRun[],
  deps: { env: ChaosEnvironment; stores: ReadonlyMap<string, StoreView> },
  violations: Violation[],
): Promise<RestoreOutcome[]> {
  const { env } = deps;
  const workDir = path.join(env.root, 'restore');
  await fs.mkdir(workDir, { recursive: true });
  const server = new URL(env.sourcesUrl);
  const outcomes: RestoreOutcome[] = [];
  for (const [index, run] of runs.entries()) {
    const started = performance.now();
    const target = env.targets.find((candidate) => candidate.name === run.target)!;
    const source = env.sources.get(target.source)!;
    const store = deps.stores.get(target.store)!;
    const scratch = `chaos_restore_${index}`;
    const dumpFile = path.join(workDir, `${run.id}.dump`);
    let detail = '';
    let ok = false;
    try {
      const recorded = run.artifact!.files[0]!;
      const stream = await store.reader.read(store.keyPrefix + run.artifact!.prefix + recorded.name);
      if (!stream) throw new Error(`${recorded.name} is missing`);
      await pipeline(stream, createWriteStream(dumpFile));
      const local = await measure(createReadStream(dumpFile));
      if (local.sha256 !== recorded.sha256) throw new Error(`${recorded.name} does not match its recorded SHA-256`);
      await query(env.sourcesUrl, `create database ${scratch}`);
      const decrypt = target.encrypted ? 'age -d -i "$CHAOS_IDENTITY" "$CHAOS_DUMP"' : 'cat "$CHAOS_DUMP"';
      await runShell(`${decrypt} | zstd -d -q | pg_restore --exit-on-error --single-transaction --no-owner --no-privileges --dbname="$CHAOS_DATABASE"`, {
        CHAOS_IDENTITY: env.identityFile,
        CHAOS_DUMP: dumpFile,
        CHAOS_DATABASE: scratch,
        PGHOST: server.hostname,
        PGPORT: server.port,
        PGUSER: decodeURIComponent(server.username),
        PGPASSWORD: decodeURIComponent(server.password),
      });
      const differences = compareFingerprints(source.fingerprints, await tableFingerprints(withDatabase(env.sourcesUrl, scratch)));
      ok = differences.length === 0;
      detail = ok ? `${Object.keys(source.fingerprints).length} tables identical to ${source.database}` : differences.join('; ');
    } catch (error) {
      detail = (error as Error).message;
    } finally {
      await query(env.sourcesUrl, `drop database if exists ${scratch} with (force)`).catch(() => {});
      await fs.rm(dumpFile, { force: true });
    }
    if (!ok) violations.push({ invariant: 'restoreMatches', runId: run.id, detail });
    outcomes.push({ runId: run.id, target: run.target, ok, detail, ms: performance.now() - started });
  }
  return outcomes;
}

function runShell(script: string, env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`restore pipeline exited with ${code}: ${stderr.slice(-1000)}`))));
  });
}
