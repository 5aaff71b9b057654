import { BackstopError } from './errors.ts';

/** The role attributes pg_dumpall writes in `ALTER ROLE … WITH`, each on or off. */
export const ROLE_FLAGS = ['SUPERUSER', 'INHERIT', 'CREATEROLE', 'CREATEDB', 'LOGIN', 'REPLICATION', 'BYPASSRLS'] as const;
export type RoleFlag = (typeof ROLE_FLAGS)[number];
export type RoleFlags = Record<RoleFlag, boolean>;

export interface DumpedRole {
  name: string;
  flags: RoleFlags;
}

const IDENTIFIER = `("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const CREATE_ROLE = new RegExp(`^CREATE ROLE ${IDENTIFIER};$`);
const ALTER_ROLE_WITH = new RegExp(`^ALTER ROLE ${IDENTIFIER} WITH (.*);$`);

function unquote(identifier: string): string {
  return identifier.startsWith('"') ? identifier.slice(1, -1).replaceAll('""', '"') : identifier;
}

function flagsOf(attributes: string): RoleFlags {
  const words = new Set(attributes.split(/\s+/));
  return Object.fromEntries(ROLE_FLAGS.map((flag) => [flag, words.has(flag)])) as RoleFlags;
}

/** The roles a `pg_dumpall --globals-only` file creates, with their attributes. */
export function dumpedRoles(globalsSql: string): DumpedRole[] {
  const roles: DumpedRole[] = [];
  for (const line of globalsSql.split('\n')) {
    const altered = ALTER_ROLE_WITH.exec(line);
    if (altered) roles.push({ name: unquote(altered[1]!), flags: flagsOf(altered[2]!) });
  }
  return roles;
}

export interface GlobalsPlan {
  /** The globals file to run: as dumped, less the CREATE and ALTER … WITH of roles the server already has. */
  sql: string;
  /** Roles already on the server with the same attributes: kept as they are (password included), reported. */
  existing: string[];
  /** Roles the file creates. */
  created: string[];
}

/**
 * How a server backup's globals go into a server that may already have some of its roles
 * (every server has its bootstrap superuser). A role that exists with the same attributes is
 * reported and kept, password and all; its settings and memberships from the backup are still
 * applied. A role that exists with other attributes (a LOGIN role that is NOLOGIN there, a
 * superuser that is not) is a conflict: nothing is run, and the restore fails naming each.
 */
export function planGlobals(globalsSql: string, present: ReadonlyMap<string, RoleFlags>): GlobalsPlan {
  const roles = dumpedRoles(globalsSql);
  const conflicts: string[] = [];
  const existing: string[] = [];
  for (const role of roles) {
    const there = present.get(role.name);
    if (!there) continue;
    const differing = ROLE_FLAGS.filter((flag) => there[flag] !== role.flags[flag]);
    if (differing.length > 0) conflicts.push(`"${role.name}" (${differing.map((flag) => `${role.flags[flag] ? '' : 'NO'}${flag} in the backup`).join(', ')})`);
    else existing.push(role.name);
  }
  if (conflicts.length > 0) {
    throw new BackstopError(
      'RESTORE_TARGET_NOT_EMPTY',
      `The server to restore into already has roles that differ from the backup's: ${conflicts.join('; ')}. Drop or change them there, or restore into a fresh server.`,
    );
  }
  const keep = new Set(existing);
  const sql = globalsSql
    .split('\n')
    .filter((line) => {
      const match = CREATE_ROLE.exec(line) ?? ALTER_ROLE_WITH.exec(line);
      return !(match && keep.has(unquote(match[1]!)));
    })
    .join('\n');
  return { sql, existing, created: roles.map((role) => role.name).filter((name) => !keep.has(name)) };
}

/** The statements pg_dumpall --globals-only writes, by how each line starts. */
const GLOBALS_STATEMENTS = [
  /^SET [a-z_]+ = [^;]*;$/,
  /^CREATE ROLE /,
  /^ALTER ROLE /,
  /^GRANT /,
  /^COMMENT ON (ROLE|TABLESPACE) /,
  /^SECURITY LABEL FOR \S+ ON (ROLE|TABLESPACE) /,
  /^CREATE TABLESPACE /,
  /^ALTER TABLESPACE /,
];
const RESTRICT = /^\\(un)?restrict [A-Za-z0-9]+$/;

/** True when the line is one statement: its only `;` ends it, outside any quote, and every quote closes. */
function isOneStatement(line: string): boolean {
  let quote: string | null = null;
  for (let index = 0; index < line.length; index++) {
    const char = line[index]!;
    if (quote) {
      if (char === quote) {
        if (line[index + 1] === quote) index++;
        else quote = null;
      }
    } else if (char === "'" || char === '"') quote = char;
    else if (char === ';' && index !== line.length - 1) return false;
  }
  return quote === null && line.endsWith(';');
}

/**
 * A globals file runs as a role that may create roles on the destination, so it must be
 * exactly what pg_dumpall --globals-only writes: comments, `\restrict`/`\unrestrict`, and one
 * statement per line of the kinds above, with no backslash anywhere else (psql would run it
 * as a meta-command). Anything else, a forged or damaged file, is refused before a line runs.
 */
export function assertGlobalsShape(globalsSql: string, fileName: string): void {
  const lines = globalsSql.split('\n');
  for (const [index, line] of lines.entries()) {
    if (line === '' || (line.startsWith('--') && !line.includes('\\')) || RESTRICT.test(line)) continue;
    if (!line.includes('\\') && isOneStatement(line) && GLOBALS_STATEMENTS.some((statement) => statement.test(line))) continue;
    throw new BackstopError(
      'ARTIFACT_UNSAFE',
      `${fileName} line ${index + 1} is not what pg_dumpall --globals-only writes (one role, membership, setting or tablespace statement per line); nothing was run. Restore without them (--no-globals) and create the roles by hand.`,
    );
  }
}
