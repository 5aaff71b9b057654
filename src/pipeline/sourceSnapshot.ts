import type pg from 'pg';
import { describeDatabase } from '../core/databaseUrl.ts';
import { BackstopError } from '../core/errors.ts';
import { isConnectionLost, pgErrorCode } from '../core/pgErrors.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';

export interface TableCount {
  schema: string;
  name: string;
  rows: number;
  /** Present when asked for: see `tableStatsSql`. */
  checksum?: string;
}

export interface SourceSnapshot {
  serverVersion: string;
  serverVersionNum: number;
  database: string;
  /** pg_database_size: a stores' hint of how large the dump may get. */
  databaseBytes: number;
  /** Exported snapshot id for `pg_dump --snapshot`, or null when the server cannot export one. */
  snapshot: string | null;
  /** Exact row counts of every table pg_dump dumps, read in the dump's own snapshot. */
  countRows(signal?: AbortSignal, options?: { checksums?: boolean }): Promise<TableCount[]>;
  /** The tables pg_dump dumps, with their size on disk, as the snapshot sees them (a parallel dump's plan). */
  tableSizes(): Promise<Array<{ schema: string; name: string; bytes: number }>>;
  close(): Promise<void>;
}

/** How long a parallel dump's plan waits for the lock on a table it has to measure (see tableSizes). */
const SIZE_LOCK_TIMEOUT_MS = 200;

/** The tables whose data pg_dump writes: ordinary tables and partitions outside system schemas. */
export const userTablesSql = `
  select n.nspname as schema, c.relname as name
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')
    and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
  order by 1, 2`;

/**
 * Row count, and optionally a content checksum that does not depend on row order (a restore
 * may store rows in another order): the sum, as numeric, of the first 64 bits of each row's
 * md5. It streams over the table with constant memory, unlike an ordered string_agg.
 *
 * `ONLY`: a parent of table inheritance would count its children's rows too, while pg_dump
 * (COPY … TO) writes, and a restore loads, each table's own rows only. Without it every
 * inheriting database seemed to differ from its backup, and a parallel restore's count of the
 * parent depended on whether its children were loaded yet. Partitions are leaves: no change.
 */
function tableStatsSql(qualified: string, checksums: boolean): string {
  return checksums
    ? `select count(*) as count, coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text as checksum from only ${qualified} t`
    : `select count(*) as count from only ${qualified}`;
}

export async function countTableRows(client: pg.ClientBase, signal?: AbortSignal, options: { checksums?: boolean } = {}): Promise<TableCount[]> {
  const { rows: tables } = await client.query<{ schema: string; name: string }>(userTablesSql);
  const counts: TableCount[] = [];
  for (const table of tables) {
    signal?.throwIfAborted();
    const qualified = `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.name)}`;
    const { rows } = await client.query<{ count: string; checksum?: string }>(tableStatsSql(qualified, options.checksums === true));
    const row = rows[0]!;
    counts.push({ schema: table.schema, name: table.name, rows: Number(row.count), ...(row.checksum !== undefined ? { checksum: row.checksum } : {}) });
  }
  return counts;
}

/** The table's quoted name, or null when the database has no such table. */
export async function existingTable(client: pg.ClientBase, table: { schema: string; name: string }): Promise<string | null> {
  const qualified = `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.name)}`;
  const { rows } = await client.query<{ exists: boolean }>('select to_regclass($1) is not null as exists', [qualified]);
  return rows[0]?.exists ? qualified : null;
}

export interface ListedTableCount {
  /** Null: the database has no such table. */
  rows: number | null;
  checksum?: string;
}

/**
 * Counts (and optionally checksums) exactly the listed tables — a backup's, as its manifest
 * names them — over `connections` connections at once, in list order. Keyed by `schema.name`.
 */
/** One table's rows (and checksum when asked); rows null when there is no such table. */
export async function countTable(client: pg.ClientBase, table: { schema: string; name: string }, checksums = false): Promise<ListedTableCount> {
  const qualified = await existingTable(client, table);
  if (!qualified) return { rows: null };
  const { rows } = await client.query<{ count: string; checksum?: string }>(tableStatsSql(qualified, checksums));
  const row = rows[0]!;
  return { rows: Number(row.count), ...(row.checksum !== undefined ? { checksum: row.checksum } : {}) };
}

export async function countListedTables(
  databaseUrl: string,
  tables: ReadonlyArray<{ schema: string; name: string }>,
  options: {
    checksums?: boolean;
    signal?: AbortSignal;
    connections?: number;
    /** No parallel workers: the count runs beside a restore still loading, whose cores it must not take. */
    serial?: boolean;
  } = {},
): Promise<Map<string, ListedTableCount>> {
  const counts = new Map<string, ListedTableCount>();
  let next = 0;
  const connections = Math.max(1, Math.min(options.connections ?? 1, tables.length));
  const worker = async () => {
    const client = await connectDatabase(databaseUrl);
    try {
      if (options.serial) await client.query('set max_parallel_workers_per_gather = 0');
      while (next < tables.length) {
        options.signal?.throwIfAborted();
        const table = tables[next++]!;
        counts.set(`${table.schema}.${table.name}`, await countTable(client, table, options.checksums === true));
      }
    } finally {
      await client.end().catch(() => {});
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  return counts;
}

/**
 * Opens a REPEATABLE READ transaction on the source and exports its snapshot: pg_dump then
 * dumps exactly what the row counts see. The transaction must stay open until pg_dump has
 * imported the snapshot, so `close` is called only after the dump. Given `snapshot` (exported
 * by a replication slot), the transaction imports that one instead and pg_dump reads it too.
 */
export async function openSourceSnapshot(databaseUrl: string, options: { snapshot?: string } = {}): Promise<SourceSnapshot> {
  const client = await connectDatabase(databaseUrl);
  try {
    const { rows } = await client.query<{ server_version: string; server_version_num: string; database: string; bytes: string }>(
      `select current_setting('server_version') as server_version, current_setting('server_version_num') as server_version_num,
              current_database() as database, pg_database_size(current_database()) as bytes`,
    );
    const info = rows[0]!;
    await client.query('begin isolation level repeatable read read only');
    let snapshot: string | null;
    if (options.snapshot !== undefined) {
      // A continuous target's base backup: the snapshot a replication slot exported at its
      // consistent point, which its replication connection keeps valid until the dump is done.
      // Imported, never replaced by another: the base must be exactly at the slot's LSN.
      await client.query(`set transaction snapshot ${client.escapeLiteral(options.snapshot)}`);
      snapshot = options.snapshot;
    } else snapshot = await exportSnapshot(client);
    let closed = false;
    return {
      serverVersion: info.server_version.split(' ')[0]!,
      serverVersionNum: Number(info.server_version_num),
      database: info.database,
      databaseBytes: Number(info.bytes),
      snapshot,
      countRows: (signal, options) =>
        countTableRows(client, signal, options).catch((error: unknown) => {
          throw sourceSessionError(databaseUrl, error, 'counting rows');
        }),
      async tableSizes() {
        const fail = (error: unknown) => {
          throw sourceSessionError(databaseUrl, error, 'listing its tables');
        };
        const { rows } = await client
          .query<{ schema: string; name: string; oid: string; bytes: string }>(
            // relpages (as of the last VACUUM or ANALYZE), not pg_table_size: that takes a lock on
            // every table, and would wait, before any dump starts, on a table someone holds locked.
            `select t.schema, t.name, c.oid::text as oid,
                    (c.relpages::bigint + coalesce(toast.relpages, 0)) * current_setting('block_size')::bigint as bytes
             from (${userTablesSql}) t
             join pg_namespace n on n.nspname = t.schema
             join pg_class c on c.relnamespace = n.oid and c.relname = t.name
             left join pg_class toast on toast.oid = c.reltoastrelid`,
          )
          .catch(fail);
        const sizes = new Map(rows.map((row) => [row.oid, Number(row.bytes)]));
        // A table never vacuumed nor analyzed (just loaded or restored) has no relpages yet, and
        // a plan of zeros splits by count, not by size: such tables are measured, except those
        // someone holds (or waits for) an exclusive lock on, which stay at zero. Should such a
        // lock come in between, the statement waits briefly and every table stays at zero.
        // Inside a savepoint, so that a lock timeout does not end the snapshot's transaction,
        // and lock_timeout is back to the session's for the row counts run here later.
        const unknown = rows.filter((row) => Number(row.bytes) === 0).map((row) => row.oid);
        if (unknown.length > 0) {
          await client.query('savepoint backstop_table_sizes').catch(fail);
          try {
            await client.query(`set local lock_timeout = '${SIZE_LOCK_TIMEOUT_MS}ms'`);
            const measured = await client.query<{ oid: string; bytes: string }>(
              `select t.id::text as oid, pg_table_size(t.id) as bytes from unnest($1::oid[]) as t(id)
               where not exists (select 1 from pg_locks l where l.relation = t.id and l.mode = 'AccessExclusiveLock')`,
              [unknown],
            );
            await client.query('release savepoint backstop_table_sizes');
            await client.query('set local lock_timeout to default');
            for (const row of measured.rows) sizes.set(row.oid, Number(row.bytes));
          } catch (error) {
            if (pgErrorCode(error) !== '55P03') fail(error);
            await client.query('rollback to savepoint backstop_table_sizes').catch(fail);
          }
        }
        return rows.map((row) => ({ schema: row.schema, name: row.name, bytes: sizes.get(row.oid)! }));
      },
      async close() {
        if (closed) return;
        closed = true;
        // Ending the connection rolls the transaction back. No ROLLBACK first: it would queue
        // behind a row count that may be blocked on a lock, and cancellation must not wait.
        await client.end().catch(() => {});
      },
    };
  } catch (error) {
    await client.end().catch(() => {});
    throw sourceSessionError(databaseUrl, error, 'opening its snapshot');
  }
}

/** The open transaction's snapshot exported, or null (a fresh transaction begun) where the server cannot. */
async function exportSnapshot(client: pg.ClientBase): Promise<string | null> {
  try {
    // Not inside a savepoint: PostgreSQL refuses to export a snapshot from a subtransaction.
    const exported = await client.query<{ id: string }>('select pg_export_snapshot() as id');
    return exported.rows[0]!.id;
  } catch {
    // Standbys before PostgreSQL 10 and some poolers cannot export snapshots: the dump
    // then takes its own, and the counts are as of the start of a fresh transaction.
    await client.query('rollback');
    await client.query('begin isolation level repeatable read read only');
    return null;
  }
}

/**
 * A failure on Backstop's own session to the source, as an error that says what happened:
 * pg's own errors would end the run as INTERNAL with a bare "terminating connection due to
 * administrator command" (the chaos suite's source-gone fault found one).
 */
function sourceSessionError(databaseUrl: string, error: unknown, doing: string): unknown {
  if (error instanceof BackstopError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const where = describeDatabase(databaseUrl);
  // 57P0x: the server shut down or an administrator ended the session; 3D000: the database was dropped.
  const code = pgErrorCode(error);
  if (code?.startsWith('57P') || code === '3D000' || isConnectionLost(error) || /server closed the connection/i.test(message)) {
    return new BackstopError('DATABASE_UNREACHABLE', `The source ${where} went away while ${doing}: ${message}. Check that it is up, then run the backup again.`, {
      cause: error,
    });
  }
  return new BackstopError('DUMP_FAILED', `Backstop's session on the source ${where} failed while ${doing}: ${message}.`, { cause: error });
}
