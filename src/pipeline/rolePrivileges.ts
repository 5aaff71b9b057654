import type pg from 'pg';

/** Built-in roles whose members read or write the server's files or run programs on it. */
const SERVER_ACCESS_ROLES = ['pg_execute_server_program', 'pg_write_server_files', 'pg_read_server_files'];

export interface RolePrivileges {
  name: string;
  superuser: boolean;
  createrole: boolean;
  createdb: boolean;
  /** The built-in roles above that the role is a member of (empty for a superuser, who has them all anyway). */
  serverAccess: string[];
  /**
   * Other roles with SUPERUSER or CREATEROLE it is a member of: it can SET ROLE to them, and so
   * can code that runs as it.
   */
  elevatedRoles: string[];
}

/** What the connection's role may do beyond its own objects. */
export async function privilegesOf(client: pg.Client): Promise<RolePrivileges> {
  const { rows } = await client.query<{ name: string; superuser: boolean; createrole: boolean; createdb: boolean }>(
    `select rolname as name, rolsuper as superuser, rolcreaterole as createrole, rolcreatedb as createdb from pg_roles where rolname = current_user`,
  );
  const serverAccess: string[] = [];
  for (const builtIn of SERVER_ACCESS_ROLES) {
    const { rows: member } = await client.query<{ member: boolean }>(`select exists (select 1 from pg_roles where rolname = $1) and pg_has_role(current_user, $1, 'MEMBER') as member`, [
      builtIn,
    ]);
    if (member[0]?.member && !rows[0]!.superuser) serverAccess.push(builtIn);
  }
  const { rows: elevated } = await client.query<{ name: string }>(
    `select rolname as name from pg_roles
      where (rolsuper or rolcreaterole) and rolname <> current_user and pg_has_role(current_user, oid, 'MEMBER')
      order by rolname`,
  );
  return { ...rows[0]!, serverAccess, elevatedRoles: rows[0]!.superuser ? [] : elevated.map((row) => row.name) };
}

/**
 * Why running a dump's code as this role would give that code more than its own objects had:
 * a superuser, a CREATEROLE role (which can grant itself the built-in roles above), a member of
 * one of those built-in roles, or a member of a superuser or CREATEROLE role reads files or runs
 * programs on the server. Empty when the role is unprivileged.
 */
export function privilegeReasons(role: RolePrivileges): string[] {
  return [
    role.superuser ? 'a superuser' : null,
    role.createrole && !role.superuser ? 'has CREATEROLE' : null,
    ...role.serverAccess.map((name) => `a member of ${name}`),
    ...role.elevatedRoles.map((name) => `a member of "${name}" (a superuser or CREATEROLE role)`),
  ].filter((reason): reason is string => reason !== null);
}
