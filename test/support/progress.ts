import type { ReportedProgress } from '../../src/core/runProgress.ts';

/** Progress as a runner reports it, for tests that write it directly. */
export function sampleProgress(overrides: Partial<ReportedProgress> = {}): ReportedProgress {
  return {
    operation: 'backup',
    phase: 'dumping',
    bytesDone: 4096,
    bytesStored: 1024,
    bytesDumped: 4096,
    totalBytes: 16384,
    totalBasis: 'previous-backup',
    percent: 25,
    rateBytesPerSecond: 1024,
    etaSeconds: 12,
    elapsedMs: 4000,
    ...overrides,
  };
}

/** Progress as the API shows it, less the catalog's timestamp. */
export function withoutTimestamp(progress: unknown): unknown {
  if (progress === null || typeof progress !== 'object') return progress;
  const { updatedAt: _updatedAt, ...rest } = progress as Record<string, unknown>;
  return rest;
}
