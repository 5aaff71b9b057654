/**
 * The environment of the programs Backstop starts (pg_dump, pg_restore, psql, zstd, stdbuf):
 * only what they need, never Backstop's own. Backstop's environment holds the catalog URL,
 * runner and GitHub tokens and AWS keys; a child that inherited it would hand them to anyone
 * who can read its /proc/PID/environ, and a pg tool would send a PGPASSWORD meant for one
 * server to whichever server it connects to.
 */

/** Locale and time zone (messages, number formats), the search path, and the user's home (~/.pgpass, ~/.postgresql/). */
const BASE_VARIABLES = ['PATH', 'HOME', 'LANG', 'LANGUAGE', 'TZ', 'LD_LIBRARY_PATH'];

/**
 * libpq's environment variables that say how to connect (TLS, Kerberos, where the password and
 * service files are) but neither which server nor who: the database URL says that, and
 * Backstop sets PGPASSWORD / PGAPPNAME / PGCONNECT_TIMEOUT itself. Left out on purpose:
 * PGPASSWORD, PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, PGUSER, PGSERVICE and PGOPTIONS.
 */
const LIBPQ_SETTINGS = [
  'PGPASSFILE',
  'PGSERVICEFILE',
  'PGSYSCONFDIR',
  'PGLOCALEDIR',
  'PGSSLMODE',
  'PGREQUIRESSL',
  'PGSSLNEGOTIATION',
  'PGSSLCOMPRESSION',
  'PGSSLCERT',
  'PGSSLKEY',
  'PGSSLCERTMODE',
  'PGSSLROOTCERT',
  'PGSSLCRL',
  'PGSSLCRLDIR',
  'PGSSLSNI',
  'PGSSLMINPROTOCOLVERSION',
  'PGSSLMAXPROTOCOLVERSION',
  'PGMINPROTOCOLVERSION',
  'PGMAXPROTOCOLVERSION',
  'PGREQUIREPEER',
  'PGREQUIREAUTH',
  'PGCHANNELBINDING',
  'PGGSSENCMODE',
  'PGKRBSRVNAME',
  'PGGSSLIB',
  'PGGSSDELEGATION',
  'PGTARGETSESSIONATTRS',
  'PGLOADBALANCEHOSTS',
  'PGCLIENTENCODING',
  'PGDATESTYLE',
  'PGTZ',
  'PGGEQO',
];

function pick(parent: NodeJS.ProcessEnv, names: string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = parent[name];
    if (value !== undefined) picked[name] = value;
  }
  for (const [name, value] of Object.entries(parent)) {
    if (name.startsWith('LC_') && value !== undefined) picked[name] = value;
  }
  return picked;
}

/** For any helper program (zstd, stdbuf, `--version` probes): PATH, HOME, locale and TZ. */
export function minimalEnvironment(parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return pick(parent, BASE_VARIABLES);
}

/** For a pg tool: the minimal environment, the libpq settings above, then `connection` (Backstop's PG* variables). */
export function pgToolEnvironment(connection: Record<string, string>, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return { ...pick(parent, [...BASE_VARIABLES, ...LIBPQ_SETTINGS]), ...connection };
}
