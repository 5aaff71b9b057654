import { z } from 'zod';
import type { Queryable } from '../db/pool.ts';
import { releaseRun } from '../db/runLeases.ts';
import { leaseId } from './leaseId.ts';
import { leaseLost } from './leaseLost.ts';
import { parseInput } from '../core/inputProblems.ts';

export const handBackRequest = z
  .strictObject({
    leaseId,
    reason: z.string().min(1).max(500).describe('Why the run goes back to the queue.'),
  })
  .meta({ examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', reason: 'runner shutting down' }] });

export type HandBackRequest = z.input<typeof handBackRequest>;

/** A runner shutting down before it could finish hands its run back to the queue, for another runner. */
export async function handBack(db: Queryable, runId: string, request: HandBackRequest, by: string): Promise<{ status: 'queued' }> {
  const parsed = parseInput(handBackRequest, request);
  const released = await releaseRun(db, { runId, leaseId: parsed.leaseId, reason: `${parsed.reason} (${by})` });
  if (!released) await leaseLost(db, runId);
  return { status: 'queued' };
}
