/**
 * The rewrites that make pg_dumpall / pg_dump output restorable into a new Supabase project,
 * as `supabase db dump` makes them. Statements are commented out, never deleted, so the file
 * still shows what the source had. Pure: each rule set is a per-line function.
 */
import { isReservedRole } from './supabaseProfile.ts';

const DISABLED = '-- left out for Supabase: ';

/** A quoted identifier as pg_dumpall --quote-all-identifiers writes it, and its name. */
const QUOTED = '"((?:[^"]|"")+)"';
const unquote = (quoted: string) => quoted.replaceAll('""', '"');

const createRole = new RegExp(`^CREATE ROLE ${QUOTED};$`);
const alterRole = new RegExp(`^ALTER ROLE ${QUOTED} `);
const grantRole = new RegExp(`^GRANT ${QUOTED} TO ${QUOTED}`);

/**
 * For `pg_dumpall --roles-only --quote-all-identifiers` output:
 * - reserved roles are neither created nor altered (a new project has them, supautils
 *   refuses changes), nor granted memberships;
 * - `CREATE ROLE` tolerates an existing role. pg_dumpall follows every CREATE ROLE with an
 *   ALTER ROLE that sets all attributes precisely so that "it won't hurt for the CREATE to
 *   fail" (pg_dumpall.c); restoring with ON_ERROR_STOP, the failure must be avoided instead;
 * - NOSUPERUSER, NOREPLICATION and NOBYPASSRLS are dropped: stating them at all needs a
 *   superuser, which `postgres` is not on the platform, and they are a new role's defaults.
 */
export function rewriteRolesLine(line: string): string {
  const created = createRole.exec(line);
  if (created) {
    if (isReservedRole(unquote(created[1]!))) return DISABLED + line;
    // A role name cannot hold the dollar-quote tag unnoticed: it would need "$backstop$" in it.
    return `DO $backstop$ BEGIN ${line} EXCEPTION WHEN duplicate_object THEN NULL; END $backstop$;`;
  }
  const altered = alterRole.exec(line);
  if (altered) {
    if (isReservedRole(unquote(altered[1]!))) return DISABLED + line;
    return line.replace(/ (NOSUPERUSER|NOREPLICATION|NOBYPASSRLS)\b/g, '');
  }
  const granted = grantRole.exec(line);
  if (granted && isReservedRole(unquote(granted[2]!))) return DISABLED + line;
  return line;
}

/** pg_dump's header above every object: `-- Name: …; Type: …; Schema: …; Owner: …`. */
const entryHeader = /^-- Name: (.*); Type: (.*); Schema: (.*); Owner: (.*)$/;

export interface DumpEntry {
  name: string;
  type: string;
  schema: string;
  owner: string;
}

/**
 * Entries of a schema dump that a new project has already, or that `postgres` may not make:
 * Supabase's event triggers (creating one needs a superuser), comments on extensions (only
 * their owner, supabase_admin, may set them), the `supabase_realtime` publication and
 * Realtime's own `supabase_realtime_*` publications, and default privileges of platform roles.
 */
export function isPlatformEntry(entry: DumpEntry): boolean {
  switch (entry.type) {
    case 'EVENT TRIGGER':
      return true;
    case 'COMMENT':
      return entry.name.startsWith('EXTENSION ');
    case 'PUBLICATION':
      return entry.name === 'supabase_realtime' || entry.name.startsWith('supabase_realtime_');
    case 'PUBLICATION TABLE':
      return entry.name.startsWith('supabase_realtime_');
    case 'DEFAULT ACL':
      return entry.owner !== 'postgres' && isReservedRole(entry.owner);
    default:
      return false;
  }
}

/**
 * A stateful line rewriter for `pg_dump --schema-only` output: every statement of a platform
 * entry (see isPlatformEntry) is commented out, up to the next entry's header. Comments,
 * blank lines and psql meta-commands (`\restrict` / `\unrestrict`) are left alone.
 */
export function createSchemaRewriter(): (line: string) => string {
  let skipping = false;
  return (line) => {
    const header = entryHeader.exec(line);
    if (header) {
      skipping = isPlatformEntry({ name: header[1]!, type: header[2]!, schema: header[3]!, owner: header[4]! });
      return line;
    }
    if (line.startsWith('-- PostgreSQL database dump complete')) skipping = false;
    if (line === '' || line.startsWith('--') || line.startsWith('\\')) return line;
    // The owner of a foreign data wrapper is a platform role: `postgres` cannot hand it over.
    if (skipping || /^ALTER FOREIGN DATA WRAPPER .+ OWNER TO /.test(line)) return DISABLED + line;
    return line;
  };
}
