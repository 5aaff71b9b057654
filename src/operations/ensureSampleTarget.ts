import type { Config } from '../core/config.ts';
import type { EmbeddedInstance } from '../db/embeddedPostgres.ts';
import type { Queryable } from '../db/pool.ts';
import { ensureTarget, type TargetRecord } from '../db/targets.ts';
import { ensureSampleDatabase } from './sampleDatabase.ts';

export const SAMPLE_TARGET = 'sample';

/**
 * The sample database in the embedded PostgreSQL (2,000 customers, 10,000 orders) and the
 * target "sample" that backs it up into the default store: what `demo` and a first
 * `server --quickstart` show. Idempotent.
 */
export async function ensureSampleTarget(db: Queryable, embedded: EmbeddedInstance, config: Pick<Config, 'defaultStoreUrl'>): Promise<TargetRecord> {
  const sampleUrl = await ensureSampleDatabase(embedded);
  return ensureTarget(db, { name: SAMPLE_TARGET, databaseUrl: sampleUrl, storeUrl: config.defaultStoreUrl });
}
