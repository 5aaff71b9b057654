import type { Pool } from '../../src/db/pool.ts';

/**
 * Catalog size per million runs: inserts `runs` finished runs spread over every target, each
 * with the columns and events a real one has (created, claimed, dump_started, dump_stored,
 * finished; one in ten failed, with an error and no artifact), then measures what the runs
 * and run_events tables (heap, indexes, TOAST) grew by, and extrapolates.
 */

export interface TableSize {
  table: string;
  heapBytes: number;
  indexBytes: number;
  toastBytes: number;
  totalBytes: number;
}

export interface CatalogSizeResult {
  runs: number;
  events: number;
  insertSeconds: number;
  /** Growth of each table for `runs` runs. */
  grown: TableSize[];
}

const TABLES = ['backstop.runs', 'backstop.run_events'];

async function sizes(pool: Pool): Promise<TableSize[]> {
  const { rows } = await pool.query<{ table: string; heap: number; index: number; total: number }>(
    `select t as table, pg_relation_size(t::regclass) as heap, pg_indexes_size(t::regclass) as index, pg_total_relation_size(t::regclass) as total
     from unnest($1::text[]) t`,
    [TABLES],
  );
  return rows.map((row) => ({
    table: row.table,
    heapBytes: Number(row.heap),
    indexBytes: Number(row.index),
    toastBytes: Number(row.total) - Number(row.heap) - Number(row.index),
    totalBytes: Number(row.total),
  }));
}

const BATCH = 20_000;

export async function measureCatalogSize(pool: Pool, options: { runs: number; log: (message: string) => void }): Promise<CatalogSizeResult> {
  await pool.query('vacuum analyze backstop.runs, backstop.run_events');
  const before = await sizes(pool);
  const eventsBefore = (await pool.query<{ count: number }>('select count(*)::int as count from backstop.run_events')).rows[0]!.count;
  const started = performance.now();
  for (let offset = 0; offset < options.runs; offset += BATCH) {
    const count = Math.min(BATCH, options.runs - offset);
    await pool.query(
      `with numbered as (
         select id, name, (row_number() over (order by id) - 1)::int as n, count(*) over () as total from backstop.targets
       ), made as (
         select t.id as target_id, t.name, i,
                timestamptz '2020-01-01' + (i / t.total) * interval '1 hour' as slot,
                i % 10 = 0 as failed
         from generate_series($1::int, $1::int + $2::int - 1) i join numbered t on t.n = i % t.total
       ), inserted as (
         insert into backstop.runs (target_id, status, trigger, attempt, max_attempts, lease_id, lease_expires_at, heartbeat_at,
           claimed_by, deadline_at, created_at, started_at, finished_at, error_code, error_message, progress, artifact, schedule_slot)
         select m.target_id, case when m.failed then 'failed' else 'succeeded' end, 'schedule', 1, 1, gen_random_uuid(),
           m.slot + interval '61 seconds', m.slot + interval '41 seconds', 'backup-host-01:' || (10000 + m.i % 50000) || ':' || substr(md5(m.i::text), 1, 6),
           m.slot + interval '6 hours', m.slot, m.slot + interval '1 second', m.slot + interval '42 seconds',
           case when m.failed then 'DUMP_FAILED' end,
           case when m.failed then 'pg_dump exited with code 1: pg_dump: error: query failed: FATAL: terminating connection due to administrator command server closed the connection unexpectedly' end,
           jsonb_build_object('phase', 'done', 'bytesDumped', 48213411 + m.i, 'bytesStored', 9214407 + m.i, 'rateBytesPerSecond', 1204411, 'elapsedMs', 40117),
           case when not m.failed then jsonb_build_object(
             'storeUrl', 's3://acme-backups/prod?region=eu-west-1',
             'prefix', m.name || '/2020/01/' || gen_random_uuid() || '/attempt-1/',
             'manifest', jsonb_build_object('name', 'manifest.json', 'size', 2214, 'sha256', md5(m.i::text) || md5((m.i + 1)::text)),
             'files', jsonb_build_array(jsonb_build_object('name', 'dump.pgcustom.zst', 'size', 9214407 + m.i, 'sha256', md5((m.i + 2)::text) || md5((m.i + 3)::text)))) end,
           m.slot
         from made m
         returning id, status, created_at, claimed_by, error_message, artifact
       )
       insert into backstop.run_events (run_id, attempt, at, kind, status, message, data)
       select r.id, e.attempt, r.created_at + e.after, e.kind, e.status, e.message, e.data
       from inserted r cross join lateral (values
         (0, interval '0', 'created', 'queued', 'queued by the schedule for ' || to_char(r.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            jsonb_build_object('scheduleSlot', to_char(r.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'skippedSlots', 0)),
         (1, interval '1 second', 'claimed', 'running', 'claimed by ' || r.claimed_by, null),
         (1, interval '2 seconds', 'dump_started', 'running', 'pg_dump 15.18 against PostgreSQL 15.18', jsonb_build_object('pgDumpVersion', '15.18', 'serverVersion', '15.18')),
         (1, interval '40 seconds', 'dump_stored', 'running', 'stored dump.pgcustom.zst: 9214407 bytes (48213411 before compression)',
            jsonb_build_object('file', 'dump.pgcustom.zst', 'size', 9214407, 'sha256', r.artifact->'files'->0->>'sha256')),
         (1, interval '42 seconds', 'finished', r.status, coalesce(r.error_message, 'finished'), case when r.error_message is not null then jsonb_build_object('code', 'DUMP_FAILED') end)
       ) as e(attempt, after, kind, status, message, data)
       where e.kind <> 'dump_stored' or r.status = 'succeeded'`,
      [offset, count],
    );
    options.log(`  ${offset + count} / ${options.runs} runs inserted`);
  }
  const insertSeconds = (performance.now() - started) / 1000;
  await pool.query('vacuum analyze backstop.runs, backstop.run_events');
  const after = await sizes(pool);
  const eventsAfter = (await pool.query<{ count: number }>('select count(*)::int as count from backstop.run_events')).rows[0]!.count;
  return {
    runs: options.runs,
    events: eventsAfter - eventsBefore,
    insertSeconds,
    grown: after.map((size, index) => ({
      table: size.table,
      heapBytes: size.heapBytes - before[index]!.heapBytes,
      indexBytes: size.indexBytes - before[index]!.indexBytes,
      toastBytes: size.toastBytes - before[index]!.toastBytes,
      totalBytes: size.totalBytes - before[index]!.totalBytes,
    })),
  };
}
