/**
 * The databases of the parallel benchmark (bench/parallelBackup.ts): the same kind of rows in
 * every table, generated server-side, with the bytes spread over the tables in one of two
 * ways, since that spread is what decides how much N streams of whole tables can gain.
 */
import pg from 'pg';

export type ParallelShape = 'several' | 'dominant';

interface TableShare {
  name: string;
  /** Its part of the table data (pg_table_size: heap and TOAST, no indexes). */
  share: number;
}

const smallTables = (count: number, share: number): TableShare[] =>
  Array.from({ length: count }, (_, index) => ({ name: `small_${String(index + 1).padStart(2, '0')}`, share: share / count }));

export const PARALLEL_SHAPES: Record<ParallelShape, { description: string; tables: TableShare[] }> = {
  several: {
    description: 'four large tables of about a fifth of the bytes each, and twelve small ones',
    tables: [...Array.from({ length: 4 }, (_, index) => ({ name: `large_${index + 1}`, share: 0.22 })), ...smallTables(12, 0.12)],
  },
  dominant: {
    description: 'one table holding four fifths of the bytes, three of 4 % each, and eight small ones',
    tables: [{ name: 'large_1', share: 0.8 }, ...Array.from({ length: 3 }, (_, index) => ({ name: `medium_${index + 1}`, share: 0.04 })), ...smallTables(8, 0.08)],
  },
};

const tableSql = (name: string) => `
  create table bench.${name} (
    id bigint primary key, account bigint not null, at timestamptz not null, status text not null,
    amount numeric(12,2) not null, payload jsonb not null, note text);
  create index on bench.${name} (account, at);`;

/** Rows `first`..`last` of a table: narrow columns, a jsonb document, and a note on a third of them. */
const insertSql = (name: string, first: number, last: number) => `
  insert into bench.${name}
  select g, g % 50000, timestamptz '2023-01-01' + g * interval '7 seconds',
         (array['pending','paid','shipped','delivered','cancelled'])[1 + g % 5], round((random() * 2000)::numeric, 2),
         jsonb_build_object('sku', 'SKU-' || lpad((g % 5000)::text, 6, '0'), 'quantity', 1 + g % 9, 'ref', md5(g::text),
           'tags', jsonb_build_array((array['red','green','blue','black'])[1 + g % 4], 'batch-' || (g % 97)), 'express', g % 7 = 0),
         case when g % 3 = 0 then md5(g::text || 'a') || ' ' || md5(g::text || 'b') end
  from generate_series(${first}, ${last}) g`;

export interface ParallelDatabase {
  /** Table data (sum of pg_table_size). */
  tableBytes: number;
  /** pg_database_size, indexes included. */
  databaseBytes: number;
  tables: Array<{ name: string; bytes: number; rows: number }>;
  seconds: number;
}

/** Fills the empty database at `url` with `shape`'s tables, `tableBytes` of table data in all. */
export async function generateParallelDatabase(url: string, shape: ParallelShape, tableBytes: number, log: (message: string) => void): Promise<ParallelDatabase> {
  const started = performance.now();
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('set synchronous_commit = off');
    await client.query('create schema bench');
    const sizeOf = async (name: string) => Number((await client.query<{ size: string }>(`select pg_table_size('bench.${name}') as size`)).rows[0]!.size);
    // Bytes per row, from a first batch into the first table.
    const calibrationRows = 20000;
    const tables: ParallelDatabase['tables'] = [];
    let bytesPerRow = 0;
    for (const table of PARALLEL_SHAPES[shape].tables) {
      await client.query(tableSql(table.name));
      const target = table.share * tableBytes;
      let rows = 0;
      if (bytesPerRow === 0) {
        await client.query(insertSql(table.name, 1, calibrationRows));
        rows = calibrationRows;
        bytesPerRow = (await sizeOf(table.name)) / calibrationRows;
      }
      const wanted = Math.max(rows, Math.round(target / bytesPerRow));
      for (let first = rows + 1; first <= wanted; first += 500_000) {
        const last = Math.min(wanted, first + 499_999);
        await client.query(insertSql(table.name, first, last));
      }
      tables.push({ name: table.name, bytes: 0, rows: wanted });
    }
    // As autovacuum would have, some time after the load.
    await client.query('vacuum analyze');
    for (const table of tables) table.bytes = await sizeOf(table.name);
    const databaseBytes = Number((await client.query<{ size: string }>('select pg_database_size(current_database()) as size')).rows[0]!.size);
    const generated = { tableBytes: tables.reduce((sum, table) => sum + table.bytes, 0), databaseBytes, tables, seconds: (performance.now() - started) / 1000 };
    log(`  ${shape}: ${(generated.tableBytes / 1e6).toFixed(0)} MB of table data (${(databaseBytes / 1e6).toFixed(0)} MB with indexes) in ${generated.seconds.toFixed(0)} s`);
    return generated;
  } finally {
    await client.end().catch(() => {});
  }
}
