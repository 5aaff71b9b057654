import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { materializedViewRefreshOrder, type MaterializedViewName, type RelationDependency, type SourceRelation } from './materializedViews.ts';
import { PLATFORM_MIGRATION_TABLES, type SourceCatalog } from './supabaseProfile.ts';

/** Views and materialized views outside system schemas and extensions. */
const viewsSql = `
  select c.oid::int8 as oid, n.nspname as schema, c.relname as name,
         case c.relkind when 'm' then 'materialized view' else 'view' end as kind, c.relispopulated as populated
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('v', 'm') and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%'
    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')`;

/** Which relations each view's query reads: its rewrite rule's dependencies on pg_class entries. */
const viewDependenciesSql = `
  select distinct r.ev_class::int8 as dependent, d.refobjid::int8 as dependency
  from pg_rewrite r join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid and d.refclassid = 'pg_class'::regclass
  join pg_class c on c.oid = r.ev_class
  where c.relkind in ('v', 'm') and d.refobjid <> r.ev_class`;

export interface SourceCatalogRead extends SourceCatalog {
  /** Materialized views to refresh after the data, in order (see materializedViewRefreshOrder). */
  materializedViews: MaterializedViewName[];
}

/**
 * The source's schemas and platform migration tables, to name only what exists to pg_dump,
 * and its populated materialized views, which a data dump leaves empty.
 */
export async function readSourceCatalog(databaseUrl: string): Promise<SourceCatalogRead> {
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
    const { rows: views } = await client.query<Omit<SourceRelation, 'oid'> & { oid: string }>(viewsSql);
    const { rows: dependencies } = await client.query<{ dependent: string; dependency: string }>(viewDependenciesSql);
    return {
      schemas: schemas.map((row) => row.name),
      migrationTables: tables,
      materializedViews: materializedViewRefreshOrder(
        views.map((view) => ({ ...view, oid: Number(view.oid) })),
        dependencies.map((row): RelationDependency => ({ dependent: Number(row.dependent), dependency: Number(row.dependency) })),
      ),
    };
  } finally {
    await client.end().catch(() => {});
  }
}
