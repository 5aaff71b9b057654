import { assertSucceededBackup } from '../core/succeededBackup.ts';
import type { Queryable } from '../db/pool.ts';
import type { Artifact } from '../core/artifact.ts';
import { getRun, type RunRecord } from '../db/runRecords.ts';

/** A succeeded backup run of the catalog, for a restore or a drill; anything else is refused. */
export async function findSucceededBackup(db: Queryable, runId: string, use: 'restored' | 'verified'): Promise<RunRecord & { artifact: Artifact }> {
  return assertSucceededBackup(await getRun(db, runId), use);
}
