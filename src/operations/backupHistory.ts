import { z } from 'zod';
import type { Queryable } from '../db/pool.ts';
import { listBackupHistory, type BackupHistoryPoint } from '../db/targetActivity.ts';
import { getTarget } from '../db/targets.ts';
import { parseInput } from '../core/inputProblems.ts';

export const backupHistoryQuery = z.strictObject({
  limit: z.int().min(1).max(1000).default(100).describe('How many of the newest finished backups, at most 1000.'),
});

export type BackupHistoryQuery = z.input<typeof backupHistoryQuery>;

/** Size and duration of a target's newest finished backups (any outcome), oldest first: what its charts draw. */
export async function backupHistory(db: Queryable, target: string, query: BackupHistoryQuery): Promise<{ target: string; items: BackupHistoryPoint[] }> {
  const { limit } = parseInput(backupHistoryQuery, query);
  const found = await getTarget(db, target);
  return { target: found.name, items: await listBackupHistory(db, found.id, limit) };
}
