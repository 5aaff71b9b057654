import pg from 'pg';
import { BackstopError } from '../core/errors.ts';
import { redactDatabaseUrl } from '../core/databaseUrl.ts';

/** The one-method port every query module takes: the pool, a client, or a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export type Pool = pg.Pool;

// Return timestamptz as ISO strings rather than Date objects: they go straight to JSON, and
// comparisons are made by the database anyway.
const parseTimestamptz = pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ);
pg.types.setTypeParser(pg.types.builtins.TIMESTAMPTZ, (value) => (parseTimestamptz(value) as Date).toISOString());
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export function createPool(databaseUrl: string, options: { max?: number; applicationName?: string } = {}): Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
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

/** Postgres SQLSTATE codes Backstop reacts to. */
export const pgErrorCodes = {
  UNIQUE_VIOLATION: '23505',
  DEADLOCK_DETECTED: '40P01',
  LOCK_NOT_AVAILABLE: '55P03',
  INVALID_CATALOG_NAME: '3D000',
  INVALID_PASSWORD: '28P01',
  INVALID_AUTHORIZATION: '28000',
  ADMIN_SHUTDOWN: '57P01',
  CANNOT_CONNECT_NOW: '57P03',
} as const;

export function pgErrorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

// Connection-level failures: the catalog is down, restarting, or refusing connections.
const unavailableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
]);

/**
 * A connection-level failure: the server is down, restarting, or refusing connections, or the
 * connection broke mid-query. A raw one that reaches the API or the CLI came from the catalog
 * (connections to databases being backed up or restored fail as DATABASE_UNREACHABLE).
 */
export function isConnectionLost(error: unknown): boolean {
  const code = pgErrorCode(error);
  if (code && (unavailableCodes.has(code) || code.startsWith('08'))) return true;
  const message = (error as Error)?.message ?? '';
  return /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED|Client has encountered a connection error/i.test(message);
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

/** Turns a connection failure into an error that names the (redacted) URL and what to check. */
export function connectionError(databaseUrl: string, error: unknown, role: 'catalog' | 'database'): BackstopError {
  const code = pgErrorCode(error);
  const where = redactDatabaseUrl(databaseUrl);
  const reason = (error as Error)?.message ?? String(error);
  let hint = 'Check that the server is running and the host, port and credentials are right.';
  if (code === pgErrorCodes.INVALID_CATALOG_NAME) hint = 'The database does not exist: create it or fix the URL.';
  if (code === pgErrorCodes.INVALID_PASSWORD || code === pgErrorCodes.INVALID_AUTHORIZATION) hint = 'Check the user name and password.';
  return new BackstopError(role === 'catalog' ? 'CATALOG_UNAVAILABLE' : 'DATABASE_UNREACHABLE', `Cannot connect to the ${role} at ${where}: ${reason}. ${hint}`, { cause: error });
}

/**
 * A single connection to a database being backed up or restored into (not the catalog),
 * failing with DATABASE_UNREACHABLE and a message that names the redacted URL.
 */
export async function connectDatabase(databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'backstop', connectionTimeoutMillis: 15_000 });
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
