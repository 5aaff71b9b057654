import { z } from 'zod';
import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import { appendRunnerEvent } from '../db/runEvents.ts';
import { detailsObject } from './detailsObject.ts';
import { leaseId } from './leaseId.ts';
import { leaseLost } from './leaseLost.ts';
import { parseInput } from '../core/inputProblems.ts';

/** Written by the transitions themselves; a runner must not be able to fake one. */
const lifecycleEventKinds = new Set(['created', 'claimed', 'finished', 'released', 'cancel_requested', 'reaped', 'requeued']);

export const runnerEventRequest = z
  .strictObject({
    leaseId,
    kind: z.string().regex(/^[a-z][a-z0-9_]{0,39}$/),
    message: z.string().min(1).max(2000),
    data: detailsObject(50).optional(),
  })
  .meta({ examples: [{ leaseId: '00000000-0000-4000-8000-000000000000', kind: 'progress', message: 'dumped 3 of 12 tables' }] });

export type RunnerEventRequest = z.input<typeof runnerEventRequest>;

/** Records an event of a run on behalf of its runner, only while the runner's lease holds. */
export async function recordRunnerEvent(db: Queryable, runId: string, request: RunnerEventRequest): Promise<void> {
  const { leaseId: lease, kind, message, data } = parseInput(runnerEventRequest, request);
  if (lifecycleEventKinds.has(kind)) {
    throw new BackstopError('INVALID_INPUT', `Event kind "${kind}" is recorded by the catalog itself with each transition; pick another kind.`);
  }
  const recorded = await appendRunnerEvent(db, { runId, leaseId: lease, kind, message, data });
  if (!recorded) await leaseLost(db, runId);
}
