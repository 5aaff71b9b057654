import { randomBytes } from 'node:crypto';
import { withDatabase } from '../core/databaseUrl.ts';
import { BackstopError } from '../core/errors.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';
import { privilegeReasons, privilegesOf } from './rolePrivileges.ts';

/** The setting that accepts a privileged scratch role, by name. */
export const SCRATCH_PRIVILEGED_OK = 'BACKSTOP_SCRATCH_SUPERUSER_OK';

export interface ScratchServer {
  /** Any database URL on the server. */
  url: string;
  /**
   * The server is Backstop's own (the embedded scratch cluster): its superuser holds nothing
   * else, so it may create the drill's role without an opt-in.
   */
  dedicated?: boolean;
  /** The role name the user accepted as privileged (BACKSTOP_SCRATCH_SUPERUSER_OK). */
  privilegedOk?: string;
}

export interface ScratchDatabase {
  name: string;
  /** The scratch database, as the role that restores into it: it owns the database and nothing more. */
  url: string;
  /** The role pg_restore and psql connect as. */
  role: string;
  /**
   * The scratch database as the server's administrative role: for the few steps that are
   * Backstop's own and need more (creating a Supabase project's roles by name). Null when the
   * scratch URL's role is itself the unprivileged owner.
   */
  adminUrl: string | null;
  drop(): Promise<void>;
}

/**
 * A scratch database for one drill, which never runs a dump's content with more privilege than
 * its own objects had (a CHECK, a default or an index expression runs at restore time, as the
 * role restoring):
 *
 * - with a privileged scratch role (Backstop's own scratch cluster, or a superuser the user
 *   accepted by name), a role made for this drill — LOGIN, NOSUPERUSER, NOCREATEDB,
 *   NOCREATEROLE, member of nothing — owns the database, and is dropped with it;
 * - with an unprivileged one that has CREATEDB, the database is created owned by it.
 *
 * A superuser, a CREATEROLE role (which can grant itself the built-in roles below) or a member
 * of pg_execute_server_program, pg_write_server_files or pg_read_server_files is refused
 * unless BACKSTOP_SCRATCH_SUPERUSER_OK names it.
 */
export async function createScratchDatabase(server: ScratchServer): Promise<ScratchDatabase> {
  const admin = await connectDatabase(server.url);
  try {
    const role = await privilegesOf(admin);
    const reasons = privilegeReasons(role);
    const privileged = reasons.length > 0;
    if (privileged && !server.dedicated && server.privilegedOk !== role.name) {
      const what = reasons.join(', ');
      throw new BackstopError(
        'CONFIG_INVALID',
        `The scratch URL connects as "${role.name}", which is ${what}: a drill restores a dump's code (CHECKs, defaults, index expressions) as that role, so a source database's owner could run programs and read files on the scratch server. ` +
          `Set BACKSTOP_SCRATCH_URL to a role that has CREATEDB and owns only scratch databases (CREATE ROLE backstop_scratch LOGIN CREATEDB PASSWORD '…'), or unset it to use Backstop's own scratch cluster. ` +
          `To accept this role anyway (Backstop then restores as a role it creates for each drill), set ${SCRATCH_PRIVILEGED_OK}=${role.name}.`,
      );
    }
    const name = `backstop_verify_${randomBytes(6).toString('hex')}`;
    if (!privileged) {
      if (!role.createdb) {
        throw new BackstopError(
          'CONFIG_INVALID',
          `The scratch URL connects as "${role.name}", which cannot create databases. Give it CREATEDB (ALTER ROLE ${admin.escapeIdentifier(role.name)} CREATEDB), or unset BACKSTOP_SCRATCH_URL to use Backstop's own scratch cluster.`,
        );
      }
      await admin.query(`create database ${name}`);
      return {
        name,
        url: withDatabase(server.url, name),
        role: role.name,
        adminUrl: null,
        drop: () => dropScratch(server.url, name, null),
      };
    }
    const drillRole = name;
    const password = randomBytes(24).toString('base64url');
    await admin.query(`create role ${drillRole} login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password ${admin.escapeLiteral(password)}`);
    try {
      await admin.query(`create database ${name} owner ${drillRole}`);
    } catch (error) {
      await admin.query(`drop role if exists ${drillRole}`).catch(() => {});
      throw error;
    }
    const url = new URL(withDatabase(server.url, name));
    url.username = drillRole;
    url.password = password;
    // libpq reads user and password from the query string too; the drill's own must win.
    url.searchParams.delete('user');
    url.searchParams.delete('password');
    return {
      name,
      url: url.toString(),
      role: drillRole,
      adminUrl: withDatabase(server.url, name),
      drop: () => dropScratch(server.url, name, drillRole),
    };
  } finally {
    await admin.end().catch(() => {});
  }
}

async function dropScratch(serverUrl: string, name: string, role: string | null): Promise<void> {
  const admin = await connectDatabase(serverUrl);
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
    if (role) {
      // A Supabase drill may have been allowed one setting (see allowReplicaSessions).
      await admin.query(`revoke all on parameter session_replication_role from ${role}`).catch(() => {});
      await admin.query(`drop role if exists ${role}`);
    }
  } finally {
    await admin.end().catch(() => {});
  }
}

/**
 * A Supabase data file sets `session_replication_role = replica` (triggers and foreign-key
 * checks off while rows load), which needs a superuser or, from PostgreSQL 15, a grant of
 * that one setting. The drill's role gets the grant; it holds nothing outside its database.
 */
export async function allowReplicaSessions(scratch: ScratchDatabase): Promise<void> {
  if (!scratch.adminUrl) return;
  const admin = await connectDatabase(scratch.adminUrl);
  try {
    const { rows } = await admin.query<{ v: string }>(`select current_setting('server_version_num') as v`);
    if (Number(rows[0]!.v) < 150000) return;
    await admin.query(`grant set on parameter session_replication_role to ${scratch.role}`);
  } finally {
    await admin.end().catch(() => {});
  }
}
