import { BackstopError } from './errors.ts';

/**
 * Validates a Postgres connection URL and returns a form safe to log: the password is
 * replaced and query parameters that can carry secrets are dropped.
 */
export function parseDatabaseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BackstopError('INVALID_INPUT', `"${redactText(raw)}" is not a database URL. Use the form postgres://USER:PASSWORD@HOST:PORT/DATABASE.`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new BackstopError('INVALID_INPUT', `Database URL must start with postgres:// or postgresql://, got "${url.protocol}//". Use postgres://USER:PASSWORD@HOST:PORT/DATABASE.`);
  }
  if (!url.hostname && !url.searchParams.get('host')) {
    throw new BackstopError('INVALID_INPUT', 'Database URL has no host. Use postgres://USER:PASSWORD@HOST:PORT/DATABASE.');
  }
  return url;
}

export function redactDatabaseUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '*****';
    for (const key of [...url.searchParams.keys()]) {
      if (/pass|secret|key|token/i.test(key)) url.searchParams.set(key, '*****');
    }
    return url.toString();
  } catch {
    return redactText(raw);
  }
}

/** Best effort for text that failed to parse: hide anything between "://user:" and "@". */
export function redactText(text: string): string {
  return text.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1*****@');
}

export function databaseName(raw: string): string {
  const url = parseDatabaseUrl(raw);
  return decodeURIComponent(url.pathname.replace(/^\//, '')) || url.username || 'postgres';
}

/** The same server, another database. */
export function withDatabase(raw: string, database: string): string {
  const url = parseDatabaseUrl(raw);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/** Where a database is, for messages and events: no scheme, user or password. */
export function describeDatabase(raw: string): string {
  const url = parseDatabaseUrl(raw);
  return `database "${databaseName(raw)}" on ${url.hostname || url.searchParams.get('host')}${url.port ? `:${url.port}` : ''}`;
}

/** Which database a URL points at, for display: never its password or other query parameters. */
export interface DatabaseLocation {
  host: string;
  port: number | null;
  database: string;
  user: string | null;
}

/** The location of a stored database URL; null when there is none (a target made by `import`) or it does not parse. */
export function databaseLocation(raw: string): DatabaseLocation | null {
  let url: URL;
  try {
    url = parseDatabaseUrl(raw);
  } catch {
    return null;
  }
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      return text;
    }
  };
  const host = url.hostname ? url.hostname.replace(/^\[|\]$/g, '') : (url.searchParams.get('host') ?? '');
  const port = url.port || url.searchParams.get('port');
  const user = url.username ? decode(url.username) : url.searchParams.get('user');
  const database = decode(url.pathname.replace(/^\//, '')) || url.searchParams.get('dbname') || user || 'postgres';
  return { host, port: port && /^\d+$/.test(port) ? Number(port) : null, database, user: user || null };
}

/**
 * A server target's URL, with the database it reads the server from: the one in the URL, or
 * `postgres` when it names none (libpq would otherwise pick the user's name).
 */
export function serverReadUrl(raw: string): string {
  const url = parseDatabaseUrl(raw);
  if (url.pathname.replace(/^\//, '') !== '' || url.searchParams.has('dbname')) return raw;
  return withDatabase(raw, 'postgres');
}
