import type { Logger } from 'pino';
import pg from 'pg';
import type { Config } from '../core/config.ts';
import { parseDatabaseUrl } from '../core/databaseUrl.ts';
import { ensureEmbeddedPostgres, type EmbeddedInstance } from '../db/embeddedPostgres.ts';
import { migrate } from '../db/migrate.ts';
import { connectionError, pgErrorCode, pgErrorCodes } from '../core/pgErrors.ts';
import { createPool, type Pool } from '../db/pool.ts';

export interface Catalog {
  pool: Pool;
  /** The embedded server, when the catalog is embedded (its other databases host the demo). */
  embedded: EmbeddedInstance | null;
  close(): Promise<void>;
}

const CATALOG_DATABASE = 'backstop';

/**
 * Connects to the catalog (BACKSTOP_DATABASE_URL, or the embedded Postgres under
 * BACKSTOP_HOME) and applies pending migrations.
 */
export async function openCatalog(config: Config, log: Logger, options: { poolSize?: number } = {}): Promise<Catalog> {
  let url: string;
  let embedded: EmbeddedInstance | null = null;
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

export async function createDatabaseIfMissing(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (rowCount === 0) {
      await client.query(`create database ${client.escapeIdentifier(name)}`).catch((error) => {
        // Another process created it between our check and our create.
        if (pgErrorCode(error) !== '42P04' && pgErrorCode(error) !== pgErrorCodes.UNIQUE_VIOLATION) throw error;
      });
    }
  } finally {
    await client.end();
  }
}
