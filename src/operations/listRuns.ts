import { z } from 'zod';
import { BackstopError } from '../core/errors.ts';
import { runStatuses } from '../core/runState.ts';
import type { Queryable } from '../db/pool.ts';
import { listRunsPage } from '../db/runListing.ts';
import type { RunRecord } from '../db/runRecords.ts';
import { getTarget } from '../db/targets.ts';
import { parseInput } from '../core/inputProblems.ts';
import { decodeRunCursor, encodeRunCursor } from './runCursor.ts';
import { runKinds } from './runRecord.ts';
import { targetNameSchema as targetName } from './targets/targetInput.ts';

export const MAX_PAGE_SIZE = 200;
export const MAX_OFFSET = 10_000;

export const runListQuery = z.strictObject({
  target: targetName.optional().describe('Only runs of this target.'),
  status: z
    .enum(runStatuses, { error: (issue) => `Unknown status "${String(issue.input).slice(0, 40)}". Use one of: ${runStatuses.join(', ')}` })
    .optional()
    .describe('Only runs in this status.'),
  kind: z.enum(runKinds).optional().describe('Only backups or only verification drills.'),
  limit: z.int().min(1).max(MAX_PAGE_SIZE).default(50).describe(`Page size, at most ${MAX_PAGE_SIZE}.`),
  cursor: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9_-]+$/)
    .optional()
    .describe('`nextCursor` of the previous page (newest first). Stable while runs are added.'),
  offset: z.int().min(0).max(MAX_OFFSET).optional().describe('Skip this many runs (instead of a cursor).'),
});

export type RunListQuery = z.input<typeof runListQuery>;

export interface RunPage {
  items: RunRecord[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** One page of runs, newest first, filtered by target, status and kind. */
export async function listRuns(db: Queryable, query: RunListQuery): Promise<RunPage> {
  const { target, status, kind, limit, cursor, offset } = parseInput(runListQuery, query);
  if (cursor !== undefined && offset !== undefined) {
    throw new BackstopError('INVALID_INPUT', 'Pass either cursor or offset, not both.');
  }
  // An unknown target is an error (TARGET_NOT_FOUND), not an empty list that hides a typo.
  if (target !== undefined) await getTarget(db, target);
  const after = cursor === undefined ? undefined : decodeRunCursor(cursor);
  // One more than asked tells whether there is a next page without a count.
  const { runs, positions } = await listRunsPage(db, { targetName: target, status, kind, limit: limit + 1, after, offset });
  const last = positions[limit - 1];
  return { items: runs.slice(0, limit), nextCursor: runs.length > limit && last ? encodeRunCursor(last) : null };
}
