import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { parseDatabaseUrl } from '../core/databaseUrl.ts';
import { createDatabaseIfMissing } from '../db/createDatabaseIfMissing.ts';
import { ensureEmbeddedPostgres, type EmbeddedInstance } from '../db/embeddedPostgres.ts';
import { migrate } from '../db/migrate.ts';
import { connectionError, pgErrorCode } from '../core/pgErrors.ts';
import { createPool, type Pool, type Queryable } from '../db/pool.ts';

/** What every operation takes to reach the catalog: the pool, a client, or a transaction. */
export type { Queryable } from '../db/pool.ts';
/** The catalog's connection pool. */
export type CatalogPool = Pool;
/** The embedded PostgreSQL server (its other databases host the demo's sample). */
export type EmbeddedServer = EmbeddedInstance;

export interface Catalog {
  pool: CatalogPool;
  /** The embedded server, when the catalog is embedded. */
  embedded: EmbeddedServer | null;
  close(): Promise<void>;
}

const CATALOG_DATABASE = 'backstop';

/**
 * The catalog as operations take it, opened on its first query: a command that fails on its
 * input, or needs no catalog after all (a restore from a manifest URL), never starts the
 * embedded server or waits for an unreachable one.
 */
export function openOnFirstQuery(open: () => Promise<Catalog>): Queryable {
  return {
    query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => (await open()).pool.query<R>(text, values),
  };
}

/**
 * Connects to the catalog (BACKSTOP_DATABASE_URL, or the embedded Postgres under
 * BACKSTOP_HOME, started on first use) and applies pending migrations.
 */
export async function openCatalog(config: Config, log: Logger, options: { poolSize?: number } = {}): Promise<Catalog> {
  let url: string;
  let embedded: EmbeddedServer | null = null;
  if (config.databaseUrl) {
    parseDatabaseUrl(config.databaseUrl);
    url = config.databaseUrl;
  } else {
    embedded = await ensureEmbeddedPostgres(config.home, { onLog: (message) => log.info(message) });
    await createDatabaseIfMissing(embedded.url(), CATALOG_DATABASE);
    url = embedded.url(CATALOG_DATABASE);
  }
  const pool = createPool(url, { max: options.poolSize ?? 5 });
  try {
    await migrate(pool);
  } catch (error) {
    await pool.end().catch(() => {});
    if (pgErrorCode(error) || (error as NodeJS.ErrnoException).code === 'ECONNREFUSED' || /connect|timeout/i.test(String(error))) {
      throw connectionError(url, error, 'catalog');
    }
    throw error;
  }
  return {
    pool,
    embedded,
    close: () => pool.end(),
  };
}
