import pg from 'pg';
import type { Change, RelationLine } from '../core/changeSegment.ts';

/** A table as the destination holds it: its columns' types (format_type) and identity columns. */
export interface DestinationTable {
  qualified: string;
  types: Map<string, string>;
  /** Columns GENERATED ALWAYS AS IDENTITY: set only by INSERT … OVERRIDING SYSTEM VALUE. */
  alwaysIdentity: Set<string>;
  /** The columns of each unique index the destination enforces at every statement. */
  uniqueKeys: string[][];
}

/** One parameterized statement, and how many rows it must touch (a missing row is a divergence). */
export interface ChangeStatement {
  text: string;
  /** Text values, or (a batch of inserted rows) a text array per column. */
  values: Array<string | null | Array<string | null>>;
  rows: number;
}

const quote = (name: string): string => pg.escapeIdentifier(name);

/**
 * The parameter for a column's value, cast to the destination column's type: values travel
 * in text form, and the cast runs the type's own input function, as COPY does.
 */
function parameter(table: DestinationTable, column: string, index: number): string {
  const type = table.types.get(column);
  if (type === undefined) throw new Error(`column "${column}" is not in ${table.qualified} on the destination`);
  return `$${index}::${type}`;
}

/**
 * The WHERE clause that finds the one row a change is about. Under REPLICA IDENTITY FULL the
 * old row is the identity: it is compared column by column as the destination prints both
 * sides (json, point and others have no equality operator; the same output function on both
 * sides makes the comparison exact), and one matching row is taken by ctid, as PostgreSQL's
 * own subscriber does when several rows are identical. Otherwise the key columns are compared
 * with `=`, which can use the key's index.
 */
function rowMatch(relation: RelationLine, table: DestinationTable, row: Record<string, string | null>, values: Array<string | null>): string {
  if (relation.replicaIdentity === 'full') {
    const conditions = Object.entries(row).map(([column, value]) => {
      values.push(value);
      return `${quote(column)}::text is not distinct from (${parameter(table, column, values.length)})::text`;
    });
    return `ctid = (select ctid from ${table.qualified} where ${conditions.length > 0 ? conditions.join(' and ') : 'true'} limit 1)`;
  }
  const keys = relation.columns.filter((column) => column.key).map((column) => column.name);
  if (keys.length === 0) throw new Error(`${relation.schema}.${relation.table} has no key columns and replica identity ${relation.replicaIdentity}`);
  return keys
    .map((column) => {
      if (!(column in row)) throw new Error(`the change does not carry key column "${column}"`);
      values.push(row[column] ?? null);
      return `${quote(column)} = ${parameter(table, column, values.length)}`;
    })
    .join(' and ');
}

/**
 * INSERTs of consecutive rows of one table with the same columns, as one statement: a replay
 * is mostly round trips, and a row each is the slowest way. The values go as one text array
 * per column, unnested and cast: the statement's text (and so its prepared plan) is the same
 * for any number of rows, and a row costs no parameter of its own.
 * OVERRIDING SYSTEM VALUE: the row's identity value is the source's, not a new one.
 */
export function insertStatement(table: DestinationTable, rows: ReadonlyArray<Record<string, string | null>>): ChangeStatement {
  const columns = Object.keys(rows[0]!);
  const values = columns.map((column) => rows.map((row) => row[column] ?? null));
  const aliases = columns.map((_, index) => `c${index + 1}`);
  const casts = columns.map((column, index) => {
    const type = table.types.get(column);
    if (type === undefined) throw new Error(`column "${column}" is not in ${table.qualified} on the destination`);
    return `u.${aliases[index]}::${type}`;
  });
  const arrays = columns.map((_, index) => `$${index + 1}::text[]`);
  return {
    text: `insert into ${table.qualified} (${columns.map(quote).join(', ')}) overriding system value select ${casts.join(', ')} from unnest(${arrays.join(', ')}) as u(${aliases.join(', ')})`,
    values,
    rows: rows.length,
  };
}

/**
 * The statement for one update or delete. An update sets every column the stream sent except
 * the unchanged TOAST ones (absent, and listed in `unchanged`), on the row its old key (or,
 * when the key did not change and the stream sent no old row, its new key) finds.
 */
export function rowChangeStatement(relation: RelationLine, table: DestinationTable, change: Extract<Change, { kind: 'update' | 'delete' }>): ChangeStatement | null {
  const values: Array<string | null> = [];
  if (change.kind === 'delete') {
    const where = rowMatch(relation, table, change.old, values);
    return { text: `delete from ${table.qualified} where ${where}`, values, rows: 1 };
  }
  const unchanged = new Set(change.unchanged);
  const identity = change.old ?? change.new;
  const assignments: string[] = [];
  for (const [column, value] of Object.entries(change.new)) {
    if (unchanged.has(column)) continue;
    // An identity column GENERATED ALWAYS can only be set to DEFAULT: leave it when its value stays.
    if (table.alwaysIdentity.has(column) && (change.old === null || change.old[column] === undefined || change.old[column] === value)) continue;
    values.push(value);
    assignments.push(`${quote(column)} = ${parameter(table, column, values.length)}`);
  }
  const where = rowMatch(relation, table, identity, values);
  // Nothing to set (only unchanged values were sent): the row must still be there.
  const set = assignments.length > 0 ? assignments.join(', ') : `${quote(relation.columns[0]!.name)} = ${quote(relation.columns[0]!.name)}`;
  return { text: `update ${table.qualified} set ${set} where ${where}`, values, rows: 1 };
}

export function truncateStatement(change: Extract<Change, { kind: 'truncate' }>): ChangeStatement {
  const tables = change.tables.map((table) => `${quote(table.schema)}.${quote(table.table)}`).join(', ');
  return {
    text: `truncate table ${tables}${change.restartIdentity ? ' restart identity' : ''}${change.cascade ? ' cascade' : ''}`,
    values: [],
    rows: -1,
  };
}

type UpdateChange = Extract<Change, { kind: 'update' }>;

/**
 * The shape of an update that may go with others into one `updateRowsStatement`, or null: it
 * finds its row by an unchanged key (no old row sent, so not REPLICA IDENTITY FULL) that a
 * unique index of the destination covers, so that one key finds one row at most, and it sets
 * at least one column. Updates of the same shape set the same columns.
 */
export function updateShape(relation: RelationLine, table: DestinationTable, change: UpdateChange): string | null {
  if (relation.replicaIdentity === 'full' || change.old !== null) return null;
  const keys = relation.columns.filter((column) => column.key).map((column) => column.name);
  if (keys.length === 0 || keys.some((key) => change.new[key] === undefined || change.new[key] === null)) return null;
  if (!table.uniqueKeys.some((unique) => unique.every((column) => keys.includes(column)))) return null;
  const assigned = assignedColumns(table, change);
  return assigned.length === 0 ? null : assigned.join('\u0000');
}

/** The columns an update without an old row sets: all it sent but unchanged TOAST and identity ones. */
function assignedColumns(table: DestinationTable, change: UpdateChange): string[] {
  const unchanged = new Set(change.unchanged);
  return Object.keys(change.new).filter((column) => !unchanged.has(column) && !table.alwaysIdentity.has(column));
}

/** The key of the row an update of `updateShape` finds, as one string. */
export function updateRowKey(relation: RelationLine, change: UpdateChange): string {
  return JSON.stringify(relation.columns.filter((column) => column.key).map((column) => change.new[column.name]));
}

/**
 * Updates of one table's rows with distinct keys and the same shape (`updateShape`), as one
 * UPDATE … FROM unnest(…), values as text arrays as in `insertStatement`. Each finds its row by
 * a unique key that none of them changes, so no update can touch another's row and their order
 * does not matter: the statement must touch exactly as many rows as there are updates.
 */
export function updateRowsStatement(relation: RelationLine, table: DestinationTable, changes: ReadonlyArray<UpdateChange>): ChangeStatement {
  const keys = relation.columns.filter((column) => column.key).map((column) => column.name);
  const assigned = assignedColumns(table, changes[0]!);
  const columns = [...keys, ...assigned];
  const cast = (column: string, index: number) => {
    const type = table.types.get(column);
    if (type === undefined) throw new Error(`column "${column}" is not in ${table.qualified} on the destination`);
    return `backstop_rows.c${index + 1}::${type}`;
  };
  const set = assigned.map((column, index) => `${quote(column)} = ${cast(column, keys.length + index)}`);
  const match = keys.map((column, index) => `backstop_target.${quote(column)} = ${cast(column, index)}`);
  return {
    text: `update ${table.qualified} as backstop_target set ${set.join(', ')} from unnest(${columns.map((_, index) => `$${index + 1}::text[]`).join(', ')}) as backstop_rows(${columns.map((_, index) => `c${index + 1}`).join(', ')}) where ${match.join(' and ')}`,
    values: columns.map((column) => changes.map((change) => change.new[column] ?? null)),
    rows: changes.length,
  };
}
