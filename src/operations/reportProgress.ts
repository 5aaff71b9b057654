import { z } from 'zod';
import { BackstopError } from '../core/errors.ts';
import { parseInput } from '../core/inputProblems.ts';
import { runProgressSchema } from '../core/runProgress.ts';
import type { Queryable } from '../db/pool.ts';
import { reportRunProgress } from '../db/runProgress.ts';
import { detailsObject } from './detailsObject.ts';
import { leaseId } from './leaseId.ts';
import { leaseLost } from './leaseLost.ts';

const progressExample = {
  operation: 'backup',
  phase: 'dumping',
  bytesDone: 104857600,
  bytesStored: 31457280,
  bytesDumped: 104857600,
  totalBytes: 262144000,
  totalBasis: 'previous-backup',
  percent: 40,
  rateBytesPerSecond: 26214400,
  etaSeconds: 6,
  elapsedMs: 4100,
};

export const progressRequest = z
  .strictObject({
    leaseId,
    progress: detailsObject(50).describe('Operation, phase, byte counts, total, percent, rate, time left: see the Run schema.'),
  })
  .meta({ examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', progress: progressExample }] });

export type ProgressRequest = z.input<typeof progressRequest>;

/**
 * A runner's progress between heartbeats (about once a second while bytes move): the run and
 * its event stream show it at once. Leaves the lease alone; LEASE_LOST when the lease no
 * longer holds the run. The progress itself must be in the shape this server takes: a runner
 * of another version is told to update.
 */
export async function reportProgress(db: Queryable, runId: string, request: ProgressRequest): Promise<void> {
  const parsed = parseInput(progressRequest, request);
  const progress = runProgressSchema.safeParse(parsed.progress);
  if (!progress.success) {
    throw new BackstopError(
      'INVALID_INPUT',
      `The progress is not in the shape this server takes (${progress.error.issues[0]?.path.join('.') || 'progress'}: ${progress.error.issues[0]?.message}). Update the runner to this server's version.`,
    );
  }
  const recorded = await reportRunProgress(db, { runId, leaseId: parsed.leaseId, progress: progress.data });
  if (!recorded) await leaseLost(db, runId);
}
