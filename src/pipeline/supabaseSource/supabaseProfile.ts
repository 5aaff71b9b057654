import { exactPattern } from '../../pgtools/exactPattern.ts';
/**
 * What the Supabase profile leaves out, and why: the same lists `supabase db dump` uses
 * (supabase/cli, pkg/migration/dump.go). Pure: no IO.
 *
 * A new Supabase project already has the platform's roles, schemas and their tables; a
 * backup carries only what the user made, so that it restores into such a project.
 */

/**
 * Roles every project has (or extensions manage). Creating or altering them fails on the
 * platform (supautils blocks it), and a new project has them already. Any `supabase_*` role
 * counts too.
 */
export const RESERVED_ROLES: readonly string[] = [
  'anon',
  'authenticated',
  'authenticator',
  'dashboard_user',
  'pgbouncer',
  'postgres',
  'service_role',
  'supabase_admin',
  'supabase_auth_admin',
  'supabase_functions_admin',
  'supabase_read_only_user',
  'supabase_realtime_admin',
  'supabase_replication_admin',
  'supabase_storage_admin',
  'pgsodium_keyholder',
  'pgsodium_keyiduser',
  'pgsodium_keymaker',
  'pgtle_admin',
];

export function isReservedRole(name: string): boolean {
  return RESERVED_ROLES.includes(name) || name.startsWith('supabase_') || name.startsWith('pg_');
}

/**
 * Schemas the platform or its extensions own: left out of the schema file. `*` matches any
 * run of characters, as in pg_dump patterns.
 */
export const MANAGED_SCHEMAS: readonly string[] = [
  'auth',
  'storage',
  'realtime',
  '_realtime',
  '_analytics',
  '_supavisor',
  'extensions',
  'graphql',
  'graphql_public',
  'net',
  'pgbouncer',
  'pgsodium',
  'pgsodium_masks',
  'supabase_functions',
  'supabase_migrations',
  'vault',
  'cron',
  'pgmq',
  'pgtle',
  'repack',
  'dbdev',
  'etl',
  'topology',
  'tiger',
  'tiger_data',
  'timescaledb_*',
  '_timescaledb_*',
  'information_schema',
  'pg_*',
];

/**
 * Managed schemas whose rows are the user's all the same (sign-ups, uploaded objects'
 * metadata, edge-function hooks, cron jobs, queued HTTP requests and messages): the data
 * file keeps them. Every other managed schema's data belongs to the platform.
 */
export const MANAGED_SCHEMAS_WITH_USER_DATA: readonly string[] = ['auth', 'storage', 'supabase_functions', 'cron', 'net', 'pgmq'];

/** Migration history of the platform's services: a new project has its own rows there. */
export const PLATFORM_MIGRATION_TABLES: readonly { schema: string; name: string }[] = [
  { schema: 'auth', name: 'schema_migrations' },
  { schema: 'storage', name: 'migrations' },
  { schema: 'supabase_functions', name: 'migrations' },
];

function patternRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
}

const managedPatterns = MANAGED_SCHEMAS.map(patternRegExp);

export function isManagedSchema(schema: string): boolean {
  return managedPatterns.some((pattern) => pattern.test(schema));
}

/** Schemas pg_dump never dumps anyway; naming them to it would only add noise. */
function isSystemSchema(schema: string): boolean {
  return schema === 'information_schema' || schema.startsWith('pg_');
}

/** Whether the data file holds this table's rows. */
export function isDumpedDataTable(table: { schema: string; name: string }): boolean {
  if (PLATFORM_MIGRATION_TABLES.some((excluded) => excluded.schema === table.schema && excluded.name === table.name)) return false;
  return !isManagedSchema(table.schema) || MANAGED_SCHEMAS_WITH_USER_DATA.includes(table.schema);
}

export interface SourceCatalog {
  /** Every schema of the source database. */
  schemas: string[];
  /** Which of PLATFORM_MIGRATION_TABLES exist in the source. */
  migrationTables: { schema: string; name: string }[];
}

export interface SupabaseDumpPlan {
  /** The options both pg_dump runs share. */
  shared: string[];
  roles: string[];
  schema: string[];
  data: string[];
}

/**
 * The three dumps' options (connection excluded), as `supabase db dump` makes them. Only
 * schemas and tables that exist are named, so the manifest says what was really left out.
 */
export function planSupabaseDump(catalog: SourceCatalog, snapshot: string | null): SupabaseDumpPlan {
  const shared = ['--format=plain', ...(snapshot ? [`--snapshot=${snapshot}`] : [])];
  const managed = catalog.schemas.filter((schema) => isManagedSchema(schema) && !isSystemSchema(schema)).sort();
  const noData = managed.filter((schema) => !MANAGED_SCHEMAS_WITH_USER_DATA.includes(schema));
  return {
    shared,
    roles: ['--roles-only', '--no-role-passwords', '--quote-all-identifiers'],
    schema: [...shared, '--schema-only', ...managed.map((schema) => `--exclude-schema=${exactPattern(schema)}`)],
    // Plain format writes rows as COPY … FROM stdin, what `supabase db dump --use-copy` makes.
    data: [
      ...shared,
      '--data-only',
      ...noData.map((schema) => `--exclude-schema=${exactPattern(schema)}`),
      ...catalog.migrationTables.map((table) => `--exclude-table=${exactPattern(table.schema, table.name)}`),
    ],
  };
}
