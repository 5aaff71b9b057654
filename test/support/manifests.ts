import { MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest } from '../../src/core/manifest.ts';

/**
 * A schema-valid manifest naming a run, for tests that seed a store by hand (retention, garbage
 * collection): what binds it to a prefix is its runId, attempt, target and createdAt.
 */
export function manifestFor(input: { runId: string; attempt: number; target: string; createdAt: string }): Manifest {
  return {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_VERSION,
    backstopVersion: '0.0.0-test',
    runId: input.runId,
    attempt: input.attempt,
    target: input.target,
    createdAt: input.createdAt,
    source: { serverVersion: '17.0', serverVersionNum: 170000, database: 'app' },
    pgDump: { version: '17.0', options: [], snapshot: true },
    compression: { algorithm: 'zstd', level: null },
    encryption: null,
    files: [{ name: 'dump.pgcustom.zst', role: 'dump', format: 'pg_dump-custom', size: 10, sha256: 'b'.repeat(64), uncompressedSize: 10 }],
    tables: [],
    timings: { dumpMs: 1, totalMs: 1 },
  };
}
