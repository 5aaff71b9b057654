import pg from 'pg';

/** The one-method port every query module takes: the pool, a client, or a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export type Pool = pg.Pool;

/**
 * How catalog queries parse values: timestamptz as ISO strings rather than Date objects (they
 * go straight to JSON, and comparisons are made by the database anyway), int8 as numbers (ids,
 * counts and sizes stay far below 2^53). Scoped to catalog connections: set on pg.types, these
 * would change what every connection returns, the databases being backed up included.
 */
export const catalogTypes = new pg.TypeOverrides();
const parseTimestamptz = pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ);
catalogTypes.setTypeParser(pg.types.builtins.TIMESTAMPTZ, (value) => (parseTimestamptz(value) as Date).toISOString());
catalogTypes.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export function createPool(databaseUrl: string, options: { max?: number; applicationName?: string } = {}): Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    types: catalogTypes,
    max: options.max ?? 5,
    application_name: options.applicationName ?? 'backstop',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 10_000,
  });
  // An idle client whose server went away emits 'error' on the pool; without a listener
  // that would crash the process. The next query gets a fresh connection.
  pool.on('error', () => {});
  return pool;
}

export async function withTransaction<T>(pool: Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
