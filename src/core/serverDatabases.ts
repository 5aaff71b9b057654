import { BackstopError } from './errors.ts';

/** A database as the server lists it (pg_database). */
export interface ListedDatabase {
  name: string;
  allowConnections: boolean;
  isTemplate: boolean;
}

/** Which databases a server target backs up: the target's `options.server`. */
export interface ServerSelection {
  /** Only these; absent: every database the server has at the time of each run. */
  databases?: string[];
  excludeDatabases?: string[];
}

/**
 * The roles of the server: none, roles without passwords, or with them (falling back to
 * without, said in the run's events, where the server does not let the backup read pg_authid).
 */
export const globalsChoices = ['roles+passwords', 'roles', 'none'] as const;
export type GlobalsChoice = (typeof globalsChoices)[number];

/** A server target's `options.server`. */
export interface ServerOptions extends ServerSelection {
  globals?: GlobalsChoice;
  /** Databases dumped at once (default 1). */
  jobs?: number;
}

export interface PlannedDatabases {
  /** What a run dumps, in the server's order. */
  dump: string[];
  /** What it leaves out, and why: said in the run's events. */
  skipped: Array<{ name: string; reason: string }>;
}

/**
 * Which of a server's databases one run backs up, decided from the list read at the start of
 * that run (so a database created after the target was added is in the next backup).
 *
 * Templates (template0, template1, and any database marked datistemplate) are left out: they
 * are the server's own scaffolding, recreated by initdb, and pg_dumpall leaves them out too.
 * Databases that refuse connections (datallowconn = false) cannot be dumped and are left out,
 * said in the events. `postgres` is an ordinary database and is backed up like any other.
 * A database named in `databases` that the server does not have, or that cannot be dumped,
 * fails the run before anything is written.
 */
export function planServerDatabases(listed: readonly ListedDatabase[], selection: ServerSelection): PlannedDatabases {
  const excluded = new Set(selection.excludeDatabases ?? []);
  const skipped: PlannedDatabases['skipped'] = [];
  if (selection.databases && selection.databases.length > 0) {
    const byName = new Map(listed.map((database) => [database.name, database]));
    const missing = selection.databases.filter((name) => !byName.has(name));
    const refusing = selection.databases.filter((name) => byName.get(name)?.allowConnections === false);
    if (missing.length > 0 || refusing.length > 0) {
      const problems = [
        ...(missing.length > 0 ? [`the server has no database ${missing.map((name) => `"${name}"`).join(', ')}`] : []),
        ...(refusing.length > 0 ? [`${refusing.map((name) => `"${name}"`).join(', ')} refuses connections (datallowconn = false)`] : []),
      ];
      throw new BackstopError(
        'DUMP_FAILED',
        `The target names databases it cannot back up: ${problems.join('; ')}. Change its --databases (\`backstop target update NAME --databases …\`) or use --all-databases.`,
      );
    }
    const chosen = new Set(selection.databases.filter((name) => !excluded.has(name)));
    return { dump: listed.filter((database) => chosen.has(database.name)).map((database) => database.name), skipped };
  }
  const dump: string[] = [];
  for (const database of listed) {
    if (database.isTemplate) skipped.push({ name: database.name, reason: 'a template' });
    else if (!database.allowConnections) skipped.push({ name: database.name, reason: 'refuses connections (datallowconn = false)' });
    else if (excluded.has(database.name)) skipped.push({ name: database.name, reason: 'excluded by the target' });
    else dump.push(database.name);
  }
  return { dump, skipped };
}

/** A database's file in a server artifact: its name, made safe for any store key, and unique. */
export function databaseFileStem(name: string, index: number): string {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 60);
  return `databases/${String(index + 1).padStart(3, '0')}-${safe}`;
}
