/**
 * Materialized views in the Supabase profile. `pg_dump --schema-only` creates every one
 * `WITH NO DATA`, and `pg_dump --data-only` writes no `REFRESH MATERIALIZED VIEW` (pg_dump
 * puts those in the post-data section, which neither run dumps): restored as they are, they
 * stay unpopulated and every query on them fails. The backup records which ones the source
 * had populated, in an order that refreshes each after the ones it reads; the restore
 * refreshes them after the data, in the same transaction. Pure: no IO.
 */
import { isManagedSchema } from './supabaseProfile.ts';

export interface SourceRelation {
  oid: number;
  schema: string;
  name: string;
  kind: 'view' | 'materialized view';
  /** For a materialized view: whether it holds data (pg_class.relispopulated). */
  populated: boolean;
}

export interface RelationDependency {
  /** A view or materialized view… */
  dependent: number;
  /** …whose query reads this relation (any kind; only views and materialized views matter). */
  dependency: number;
}

export interface MaterializedViewName {
  schema: string;
  name: string;
}

/**
 * The materialized views to refresh after the data, each after every materialized view it
 * reads, directly or through plain views. Left out: those the source had not populated (a
 * refresh would fill what the source left empty), those in managed schemas (the schema file
 * does not create them), and those that read one left out for being unpopulated (refreshing
 * them fails in the source as well). Ties in schema, then name order, so the list is stable.
 */
export function materializedViewRefreshOrder(relations: readonly SourceRelation[], dependencies: readonly RelationDependency[]): MaterializedViewName[] {
  const byOid = new Map(relations.map((relation) => [relation.oid, relation]));
  const reads = new Map<number, number[]>();
  for (const { dependent, dependency } of dependencies) {
    if (dependent === dependency || !byOid.has(dependency)) continue;
    reads.set(dependent, [...(reads.get(dependent) ?? []), dependency]);
  }
  /** The materialized views a relation's query reads, looking through plain views. */
  const materializedInputs = (oid: number, seen = new Set<number>()): number[] =>
    (reads.get(oid) ?? []).flatMap((input) => {
      if (seen.has(input)) return [];
      seen.add(input);
      return byOid.get(input)!.kind === 'materialized view' ? [input] : materializedInputs(input, seen);
    });

  const ordered: MaterializedViewName[] = [];
  // oid → whether it can be refreshed (and so is, or will be, in `ordered`); a view being visited is false (no cycles in valid views).
  const refreshable = new Map<number, boolean>();
  const visit = (oid: number): boolean => {
    const known = refreshable.get(oid);
    if (known !== undefined) return known;
    refreshable.set(oid, false);
    const view = byOid.get(oid)!;
    let ok = view.populated;
    for (const input of materializedInputs(oid)) ok = visit(input) && ok;
    refreshable.set(oid, ok);
    if (ok) ordered.push({ schema: view.schema, name: view.name });
    return ok;
  };
  const sorted = relations.filter((relation) => relation.kind === 'materialized view').sort((a, b) => (a.schema === b.schema ? compare(a.name, b.name) : compare(a.schema, b.schema)));
  for (const view of sorted) visit(view.oid);
  return ordered.filter((view) => !isManagedSchema(view.schema));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `"schema"."name"`, quoted as PostgreSQL quotes identifiers. */
function quoted(view: MaterializedViewName): string {
  return [view.schema, view.name].map((part) => `"${part.replaceAll('"', '""')}"`).join('.');
}

/**
 * The statements psql runs after the data file, as one `--command`: psql sends a command
 * string that does not start with a backslash to the server as it is, so a name read from a
 * manifest cannot reach psql's meta-commands. Null when there is nothing to refresh.
 */
export function refreshMaterializedViewsSql(views: readonly MaterializedViewName[]): string | null {
  if (views.length === 0) return null;
  return views.map((view) => `REFRESH MATERIALIZED VIEW ${quoted(view)};`).join('\n');
}
