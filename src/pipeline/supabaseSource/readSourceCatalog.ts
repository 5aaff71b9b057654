import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { PLATFORM_MIGRATION_TABLES, type SourceCatalog } from './supabaseProfile.ts';

/** The source's schemas and platform migration tables, to name only what exists to pg_dump. */
export async function readSourceCatalog(databaseUrl: string): Promise<SourceCatalog> {
  const client = await connectDatabase(databaseUrl);
  try {
    const { rows: schemas } = await client.query<{ name: string }>('select nspname as name from pg_namespace order by 1');
    const { rows: tables } = await client.query<{ schema: string; name: string }>(
      `select n.nspname as schema, c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       join unnest($1::text[], $2::text[]) as wanted (schema, name) on wanted.schema = n.nspname and wanted.name = c.relname
       where c.relkind in ('r', 'p')
       order by 1, 2`,
      [PLATFORM_MIGRATION_TABLES.map((table) => table.schema), PLATFORM_MIGRATION_TABLES.map((table) => table.name)],
    );
    return { schemas: schemas.map((row) => row.name), migrationTables: tables };
  } finally {
    await client.end().catch(() => {});
  }
}
