import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';

/**
 * A whole server's fingerprint, read with plain SQL and pg_dump, independent of Backstop's own
 * counting and verification: two servers with equal fingerprints hold the same roles (their
 * attributes, passwords, settings and memberships) and the same databases (owner, encoding,
 * settings, ACLs), each with the same schema, rows, sequences and large objects.
 *
 * `skipRoles` are left out of the role part (a cluster's bootstrap superuser, whose password
 * each cluster chooses for itself).
 */
export interface ServerFingerprint {
  roles: unknown[];
  memberships: unknown[];
  databases: Record<string, DatabaseFingerprint>;
}

export interface DatabaseFingerprint {
  properties: unknown;
  schema: string;
  tables: Record<string, { rows: number; md5: string }>;
  sequences: unknown[];
  largeObjects: unknown[];
  relations: unknown[];
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/** pg_dump's schema with owners and privileges, less its comments and the random \restrict key. */
async function normalizedSchema(url: string): Promise<string> {
  const { stdout } = await promisify(execFile)('pg_dump', ['--schema-only', `--dbname=${url}`], { maxBuffer: 64 * 1024 * 1024 });
  return stdout
    .split('\n')
    .filter((line) => !line.startsWith('--') && !/^\\(un)?restrict /.test(line))
    .join('\n')
    .replace(/\n{2,}/g, '\n')
    .trim();
}

async function databaseFingerprint(url: string): Promise<DatabaseFingerprint> {
  const [properties] = await query(
    url,
    `select pg_get_userbyid(d.datdba) as owner, pg_encoding_to_char(d.encoding) as encoding, d.datcollate, d.datctype, d.datconnlimit,
            (select array_agg(a::text order by a::text) from unnest(d.datacl) a) as acl,
            (select array_agg(coalesce(pg_get_userbyid(s.setrole), '') || ':' || array_to_string(s.setconfig, ',') order by 1)
             from pg_db_role_setting s where s.setdatabase = d.oid) as settings
     from pg_database d where d.datname = current_database()`,
  );
  const tables = await query<{ schema: string; name: string }>(
    url,
    `select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where (c.relkind = 'r' or (c.relkind = 'm' and c.relispopulated)) and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' order by 1, 2`,
  );
  const counted: DatabaseFingerprint['tables'] = {};
  for (const table of tables) {
    const qualified = `"${table.schema}"."${table.name}"`;
    // ONLY: an inheritance parent's own rows, its children are counted as themselves.
    const [row] = await query<{ rows: string; md5: string }>(
      url,
      `select count(*) as rows, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as md5 from only ${qualified} t`,
    );
    counted[`${table.schema}.${table.name}`] = { rows: Number(row!.rows), md5: row!.md5 };
  }
  const sequences = await query(url, `select schemaname, sequencename, sequenceowner, last_value::text from pg_sequences order by 1, 2`);
  const largeObjects = await query(
    url,
    `select m.oid::text as oid, pg_get_userbyid(m.lomowner) as owner, m.lomacl::text as acl, md5(lo_get(m.oid)) as md5 from pg_largeobject_metadata m order by m.oid`,
  );
  const relations = await query(
    url,
    `select n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) as owner, c.relacl::text as acl, c.relispopulated
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' order by 1, 2`,
  );
  return { properties, schema: await normalizedSchema(url), tables: counted, sequences, largeObjects, relations };
}

export async function serverFingerprint(serverUrl: string, options: { skipRoles?: string[]; databases?: string[] } = {}): Promise<ServerFingerprint> {
  const skip = new Set(options.skipRoles ?? []);
  const roles = (
    await query<{ rolname: string }>(
      serverUrl,
      `select a.rolname, a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb, a.rolcanlogin, a.rolreplication, a.rolbypassrls,
              a.rolconnlimit, a.rolpassword, a.rolvaliduntil::text,
              (select array_agg(coalesce(d.datname, '*') || ':' || array_to_string(s.setconfig, ',') order by 1)
               from pg_db_role_setting s left join pg_database d on d.oid = s.setdatabase where s.setrole = a.oid) as settings
       from pg_authid a where a.rolname not like 'pg\\_%' order by a.rolname`,
    )
  ).filter((role) => !skip.has(role.rolname));
  const memberships = await query(
    serverUrl,
    `select r.rolname as role, m.rolname as member, am.admin_option
     from pg_auth_members am join pg_roles r on r.oid = am.roleid join pg_roles m on m.oid = am.member
     where r.rolname not like 'pg\\_%' order by 1, 2`,
  );
  const names = (await query<{ datname: string }>(serverUrl, `select datname from pg_database where not datistemplate order by 1`)).map((row) => row.datname);
  const databases: ServerFingerprint['databases'] = {};
  for (const name of names) {
    if (options.databases && !options.databases.includes(name)) continue;
    databases[name] = await databaseFingerprint(withDatabase(serverUrl, name));
  }
  return { roles, memberships, databases };
}
