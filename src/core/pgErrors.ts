import { redactDatabaseUrl } from './databaseUrl.ts';
import { BackstopError } from './errors.ts';

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

// Connection-level failures: the server is down, restarting, or refusing connections.
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
 * connection broke mid-query (node-postgres then refuses further queries on that client with
 * "Client has encountered a connection error"). A raw one that reaches the API or the CLI came
 * from the catalog (connections to databases being backed up or restored are turned into
 * DATABASE_UNREACHABLE where they are made).
 */
export function isConnectionLost(error: unknown): boolean {
  const code = pgErrorCode(error);
  if (code && (unavailableCodes.has(code) || code.startsWith('08'))) return true;
  const message = (error as Error)?.message ?? '';
  return /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED|Client has encountered a connection error/i.test(message);
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
