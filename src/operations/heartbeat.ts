import { z } from 'zod';
import type { Config } from '../core/config.ts';
import { parseHeartbeatProgress } from '../core/runProgress.ts';
import type { Queryable } from '../db/pool.ts';
import { renewLease, type LeaseState } from '../db/runLeases.ts';
import { detailsObject } from './detailsObject.ts';
import { leaseId } from './leaseId.ts';
import { leaseLost } from './leaseLost.ts';
import { parseInput } from '../core/inputProblems.ts';

export const heartbeatRequest = z
  .strictObject({
    leaseId,
    progress: detailsObject(50)
      .nullable()
      .optional()
      .describe('Progress, as POST /api/v1/runs/{id}/progress takes it. Progress that is not in that shape is left out (the lease is still renewed).'),
  })
  .meta({ examples: [{ leaseId: '00000000-0000-4000-8000-000000000000' }] });

export type HeartbeatRequest = z.input<typeof heartbeatRequest>;

/**
 * A runner's heartbeat: extends its lease and records progress. LEASE_LOST when the run was
 * reaped, finished or claimed again (stop at once); the answer carries cancel requests.
 */
export async function heartbeat(db: Queryable, config: Pick<Config, 'leaseTtlMs'>, runId: string, request: HeartbeatRequest): Promise<LeaseState> {
  const parsed = parseInput(heartbeatRequest, request);
  // A heartbeat is never refused for its progress: the lease matters more.
  const state = await renewLease(db, { runId, leaseId: parsed.leaseId, leaseTtlMs: config.leaseTtlMs, progress: parseHeartbeatProgress(parsed.progress) });
  return state ?? leaseLost(db, runId);
}
