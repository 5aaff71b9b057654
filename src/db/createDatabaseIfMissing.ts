import pg from 'pg';
import { pgErrorCode, pgErrorCodes } from '../core/pgErrors.ts';

/** Creates a database on a server (through its admin URL) unless it exists. */
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
