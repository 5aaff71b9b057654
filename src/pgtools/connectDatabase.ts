import pg from 'pg';
import { connectionError } from '../core/pgErrors.ts';

/**
 * A single connection to a database being backed up or restored into (not the catalog),
 * failing with DATABASE_UNREACHABLE and a message that names the redacted URL. Values parse
 * as node-postgres parses them by default; the catalog's parsers (db/pool.ts) are not its.
 */
export async function connectDatabase(databaseUrl: string, options: { replication?: 'database' } = {}): Promise<pg.Client> {
  // `replication: 'database'`: a walsender connection, which takes the replication commands
  // (CREATE_REPLICATION_SLOT …) besides SQL.
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'backstop', connectionTimeoutMillis: 15_000, ...options } as pg.ClientConfig);
  // An idle client whose server went away emits 'error'; the next query reports it instead.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw connectionError(databaseUrl, error, 'database');
  }
  return client;
}
