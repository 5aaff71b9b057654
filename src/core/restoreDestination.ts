import { databaseName, parseDatabaseUrl } from './databaseUrl.ts';
import { BackstopError } from './errors.ts';

/**
 * Where an API restore may write. Admins restore anywhere; operators only into a destination
 * the target's `restoreTo` list names, so an operator token cannot turn the server into a
 * client of arbitrary hosts and ports (a port scanner, or a writer into someone else's
 * database). Entries are `HOST:PORT/DATABASE`, each part exact or `*` for any.
 */

export const RESTORE_TO_PATTERN = '^(\\*|[A-Za-z0-9._-]+|\\[[0-9A-Fa-f:.]+\\]):(\\*|[0-9]{1,5})/(\\*|[^/\\s*]+)$';
const restoreToEntry = new RegExp(RESTORE_TO_PATTERN);

export interface RestoreDestination {
  host: string;
  port: string;
  database: string;
}

/** Connection parameters that would send libpq somewhere other than the URL's host, port and database. */
const redirectingParameters = ['host', 'hostaddr', 'port', 'dbname', 'service', 'servicefile'];

/**
 * The host, port and database a restore URL connects to, when the URL alone decides them; an
 * operator's destination must (no `?host=`, no several hosts, no service file).
 */
export function restoreDestinationOf(raw: string): RestoreDestination {
  const url = parseDatabaseUrl(raw);
  const redirecting = [...url.searchParams.keys()].filter((key) => redirectingParameters.includes(key.toLowerCase()));
  if (redirecting.length > 0 || url.hostname === '' || url.hostname.includes(',')) {
    throw new BackstopError(
      'FORBIDDEN',
      `Name the restore destination's one host, port and database in the URL itself (postgres://USER:PASSWORD@HOST:PORT/DATABASE), not in ${redirecting.length > 0 ? redirecting.map((key) => `?${key}=`).join(', ') : 'several hosts'}: only an admin may restore into a destination given otherwise.`,
    );
  }
  return { host: url.hostname.toLowerCase(), port: url.port || '5432', database: databaseName(raw) };
}

export function formatRestoreDestination(destination: RestoreDestination): string {
  return `${destination.host}:${destination.port}/${destination.database}`;
}

export function assertRestoreToEntry(entry: string): void {
  if (!restoreToEntry.test(entry)) {
    throw new BackstopError('INVALID_INPUT', `restoreTo entry "${entry}" is not HOST:PORT/DATABASE (each part exact, or * for any), e.g. "restore.internal:5432/app_restored".`);
  }
}

/** Whether a `restoreTo` entry names this destination (hosts compare case-insensitively). */
export function restoreToAllows(entries: readonly string[], destination: RestoreDestination): boolean {
  return entries.some((entry) => {
    const match = restoreToEntry.exec(entry);
    if (!match) return false;
    const [, host, port, database] = match as unknown as [string, string, string, string];
    return (
      (host === '*' || host.toLowerCase() === destination.host) && (port === '*' || Number(port) === Number(destination.port)) && (database === '*' || database === destination.database)
    );
  });
}
