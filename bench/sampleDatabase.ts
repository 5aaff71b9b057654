/**
 * Generates a realistic source database server-side (generate_series), until pg_database_size
 * reaches a target: many tables; text, jsonb, uuid, timestamps, numeric, arrays, inet; and
 * about a tenth of the bytes incompressible (sha512 output as bytea, standing in for
 * gen_random_bytes, since the embedded build has no pgcrypto).
 */
import pg from 'pg';

/** Small tables in their own schema: a real database has many tables, not just a few big ones. */
const AUDIT_TABLES = 24;

const WORDS = (
  'account active address amount approved archive balance billing branch budget cancel capture card cart ' +
  'category change charge checkout city claim client closed code comment company confirm contact contract ' +
  'country coupon credit currency customer daily debit default delivery deposit detail discount dispatch ' +
  'document draft due email entry error event expense export failed feature fee field file filter final ' +
  'invoice issue item journal label ledger level limit line list load lock login manual margin member ' +
  'message method monthly name note notice number offer office open order owner package paid partner ' +
  'payment pending period plan policy portal price primary product profile project quantity quote rate ' +
  'receipt record refund region release remote report request reserve return review revision route sale ' +
  'schedule search secure segment service session setting shipment signal status stock store subscription ' +
  'summary supplier support tax team template terms ticket total transfer trial update upgrade user value ' +
  'vendor verified warehouse weekly yearly zone'
).split(' ');

/** Temporary helper functions: they live in pg_temp, so they are never part of the dump. */
const helpersSql = `
  create function pg_temp.words(n int) returns text language sql volatile as $$
    select string_agg(w[1 + floor(random() * array_length(w, 1))::int], ' ')
    from generate_series(1, greatest(n, 1)), (select array[${WORDS.map((word) => `'${word}'`).join(',')}] as w) vocabulary
  $$;
  create function pg_temp.noise(n int) returns bytea language sql volatile as $$
    select substring(string_agg(sha512((random()::text || i::text)::bytea), ''::bytea) from 1 for n)
    from generate_series(1, (n + 63) / 64) i
  $$;`;

const schemaSql = `
  create schema app;
  create schema audit;
  create type app.order_status as enum ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded');
  create table app.customers (
    id uuid primary key, name text not null, email text not null, country char(2) not null,
    created_at timestamptz not null, balance numeric(14,2) not null, profile jsonb not null);
  create index on app.customers (email);
  create table app.products (
    id int primary key, sku text not null unique, title text not null, description text not null,
    price numeric(10,2) not null, attributes jsonb not null);
  create table app.orders (
    id bigint primary key, customer_id uuid not null references app.customers, placed_at timestamptz not null,
    status app.order_status not null, total numeric(12,2) not null, shipping jsonb not null, note text);
  create index on app.orders (customer_id, placed_at);
  create table app.order_items (
    order_id bigint not null references app.orders, line int not null, product_id int not null references app.products,
    quantity int not null, unit_price numeric(10,2) not null, primary key (order_id, line));
  create table app.events (
    id bigint primary key, occurred_at timestamptz not null, kind text not null, actor uuid, payload jsonb not null);
  create index on app.events (occurred_at);
  create table app.documents (
    id bigint primary key, title text not null, body text not null, tags text[] not null, updated_at timestamptz not null);
  create table app.attachments (
    id bigint primary key, document_id bigint not null references app.documents, sha256 bytea not null,
    content_type text not null, content bytea not null);
  create table app.metrics (series int not null, at timestamptz not null, value double precision not null);
  create index on app.metrics (series, at);
  create table app.sessions (
    id uuid primary key, customer_id uuid not null, started_at timestamptz not null, ended_at timestamptz,
    ip inet not null, user_agent text not null);
  ${Array.from({ length: AUDIT_TABLES }, (_, i) => `create table audit.log_${String(i + 1).padStart(2, '0')} (id bigint primary key, at timestamptz not null, action text not null, detail jsonb not null);`).join('\n  ')}
  create view app.customer_totals as select customer_id, count(*) as orders, sum(total) as total from app.orders group by customer_id;`;

/** Rows per table in one batch at scale 1 (about 15 MB of database). */
const UNIT = {
  customers: 5000,
  products: 400,
  orders: 10000,
  itemsPerOrder: 3,
  events: 10000,
  documents: 1000,
  attachments: 1000,
  metrics: 30000,
  sessions: 3000,
  auditRows: 100,
};

type Unit = typeof UNIT;

/**
 * How the bytes are spread over the tables. `mixed`: an order-processing application, many
 * narrow rows (order lines, metrics) beside documents, events and attachments. `documents`: a
 * content-heavy one (a CMS, a support desk, a Supabase app storing JSON and text), most bytes
 * in wide rows of text, jsonb and attachments. Both hold every table and type.
 *
 * The shape decides how the references compare: COPY formats a narrow row at a high cost per
 * byte, so on `mixed` data reading the data out (the `-Z0` floor) is slow and pg_dump's gzip
 * only about 2.5× slower than it; on `documents` data the floor is fast and gzip, not the
 * server, is what `pg_dump -Fc` waits for (about 4×; the issue's own measurement, 5×).
 */
export type SampleShape = 'mixed' | 'documents';

/** Each shape in a line, for the report. */
export const SHAPE_DESCRIPTIONS: Record<SampleShape, string> = {
  mixed: 'an order-processing application, many narrow rows beside documents, events and attachments',
  documents: 'a content-heavy application, most bytes in wide rows of text, jsonb and attachments',
};

export const SAMPLE_SHAPES = Object.keys(SHAPE_DESCRIPTIONS) as SampleShape[];

const SHAPE_WEIGHTS: Record<SampleShape, Partial<Record<keyof Unit, number>>> = {
  mixed: {},
  documents: { customers: 0.3, orders: 0.2, events: 2, documents: 12, attachments: 2, metrics: 0.1, sessions: 0.3, auditRows: 0.5 },
};

function scaled(scale: number, shape: SampleShape): Unit {
  const weights = SHAPE_WEIGHTS[shape];
  return Object.fromEntries(
    Object.entries(UNIT).map(([key, value]) => [key, key === 'itemsPerOrder' ? value : Math.max(1, Math.round(value * scale * (weights[key as keyof Unit] ?? 1)))]),
  ) as Unit;
}

/** Offsets are where this batch's ids start; earlier rows are referenced by random picks. */
interface Offsets {
  customers: number;
  products: number;
  orders: number;
  events: number;
  documents: number;
  attachments: number;
  sessions: number;
  audit: number;
  metricsAt: number;
}

function batchStatements(n: Unit, o: Offsets): string[] {
  const customerUuid = (expr: string) => `md5('c' || (${expr})::text)::uuid`;
  const pickCustomer = customerUuid(`1 + floor(random() * ${o.customers + n.customers})::int`);
  return [
    `insert into app.customers
       select ${customerUuid(`${o.customers} + g`)}, initcap(pg_temp.words(2)), 'user' || (${o.customers} + g) || '@example.' || (array['com','org','net','io'])[1 + g % 4],
              (array['US','DE','FR','GB','NL','JP','BR','IN','CA','AU'])[1 + floor(random() * 10)::int],
              timestamptz '2019-01-01' + random() * interval '5 years', round((random() * 10000)::numeric, 2),
              jsonb_build_object('plan', (array['free','pro','team','enterprise'])[1 + g % 4], 'newsletter', random() < 0.3,
                'tags', to_jsonb(string_to_array(pg_temp.words(3), ' ')), 'address', jsonb_build_object('street', pg_temp.words(2), 'zip', lpad((g % 99999)::text, 5, '0')))
       from generate_series(1, ${n.customers}) g`,
    `insert into app.products
       select ${o.products} + g, 'SKU-' || lpad((${o.products} + g)::text, 8, '0'), initcap(pg_temp.words(3)), pg_temp.words(25 + g % 40),
              round((1 + random() * 500)::numeric, 2), jsonb_build_object('color', (array['red','green','blue','black'])[1 + g % 4], 'weight', g % 20, 'dimensions', jsonb_build_array(g % 30, g % 40, g % 50))
       from generate_series(1, ${n.products}) g`,
    `insert into app.orders
       select ${o.orders} + g, ${pickCustomer}, timestamptz '2021-01-01' + random() * interval '3 years',
              (enum_range(null::app.order_status))[1 + floor(random() * 6)::int], round((5 + random() * 2000)::numeric, 2),
              jsonb_build_object('carrier', (array['ups','dhl','fedex','usps'])[1 + g % 4], 'tracking', md5(g::text || random()::text), 'express', g % 7 = 0),
              case when g % 3 = 0 then pg_temp.words(4 + g % 12) end
       from generate_series(1, ${n.orders}) g`,
    `insert into app.order_items
       select ${o.orders} + g, line, 1 + floor(random() * ${o.products + n.products})::int, 1 + floor(random() * 5)::int, round((1 + random() * 500)::numeric, 2)
       from generate_series(1, ${n.orders}) g, generate_series(1, ${n.itemsPerOrder}) line`,
    `insert into app.events
       select ${o.events} + g, timestamptz '2023-01-01' + (${o.events} + g) * interval '1 second', (array['login','logout','view','click','purchase','error','export'])[1 + g % 7],
              case when g % 5 <> 0 then ${pickCustomer} end,
              jsonb_build_object('path', '/' || replace(pg_temp.words(3), ' ', '/'), 'status', (array[200,200,200,304,404,500])[1 + g % 6],
                'duration_ms', floor(random() * 2000)::int, 'request_id', gen_random_uuid(), 'message', pg_temp.words(6 + g % 10))
       from generate_series(1, ${n.events}) g`,
    `insert into app.documents
       select ${o.documents} + g, initcap(pg_temp.words(5)), pg_temp.words(150 + floor(random() * 300)::int), string_to_array(pg_temp.words(3), ' '),
              timestamptz '2022-01-01' + random() * interval '2 years'
       from generate_series(1, ${n.documents}) g`,
    // Incompressible: compressed images, PDFs, encrypted blobs. Sizes straddle the 2 kB TOAST threshold.
    `insert into app.attachments
       select ${o.attachments} + g, ${o.documents} + 1 + (g % ${n.documents}), sha512(g::text::bytea), (array['image/png','application/pdf','image/jpeg'])[1 + g % 3],
              pg_temp.noise(512 + floor(random() * 3072)::int)
       from generate_series(1, ${n.attachments}) g`,
    `insert into app.metrics
       select 1 + g % 50, timestamptz '2024-01-01' + (${o.metricsAt} + g / 50) * interval '10 seconds', round((random() * 1000)::numeric, 3)::float8
       from generate_series(0, ${n.metrics - 1}) g`,
    `insert into app.sessions
       select gen_random_uuid(), ${pickCustomer}, timestamptz '2024-01-01' + random() * interval '1 year',
              case when g % 4 <> 0 then timestamptz '2025-01-01' + random() * interval '1 hour' end,
              ('10.' || g % 256 || '.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int)::inet,
              (array['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
                     'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
                     'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0'])[1 + g % 3]
       from generate_series(1, ${n.sessions}) g`,
    ...Array.from(
      { length: AUDIT_TABLES },
      (_, i) => `insert into audit.log_${String(i + 1).padStart(2, '0')}
         select ${o.audit} + g, timestamptz '2024-06-01' + (${o.audit} + g) * interval '1 minute', (array['insert','update','delete'])[1 + g % 3],
                jsonb_build_object('table', 'app.' || (array['orders','customers','products'])[1 + g % 3], 'by', 'user' || g % 97, 'changes', pg_temp.words(5))
         from generate_series(1, ${n.auditRows}) g`,
    ),
  ];
}

function advance(o: Offsets, n: Unit): Offsets {
  return {
    customers: o.customers + n.customers,
    products: o.products + n.products,
    orders: o.orders + n.orders,
    events: o.events + n.events,
    documents: o.documents + n.documents,
    attachments: o.attachments + n.attachments,
    sessions: o.sessions + n.sessions,
    audit: o.audit + n.auditRows,
    metricsAt: o.metricsAt + Math.ceil(n.metrics / 50),
  };
}

export interface GeneratedDatabase {
  bytes: number;
  tables: number;
  rows: number;
  seconds: number;
}

/**
 * Fills the (empty) database at `url` until pg_database_size reaches `targetBytes`. The first
 * batch calibrates: later batches are sized to land within about 1/20 of the target.
 */
export async function generateSampleDatabase(url: string, targetBytes: number, onProgress?: (bytes: number) => void, shape: SampleShape = 'mixed'): Promise<GeneratedDatabase> {
  const started = performance.now();
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('set synchronous_commit = off');
    await client.query(helpersSql);
    await client.query(schemaSql);
    const size = async () => Number((await client.query<{ size: string }>('select pg_database_size(current_database()) as size')).rows[0]!.size);
    const empty = await size();
    let offsets: Offsets = { customers: 0, products: 0, orders: 0, events: 0, documents: 0, attachments: 0, sessions: 0, audit: 0, metricsAt: 0 };
    let scale = Math.min(1, Math.max(0.05, (targetBytes - empty) / (15e6 * 8)));
    let current = empty;
    let first = true;
    while (current < targetBytes) {
      const unit = scaled(scale, shape);
      await client.query('begin');
      for (const statement of batchStatements(unit, offsets)) await client.query(statement);
      await client.query('commit');
      offsets = advance(offsets, unit);
      const before = current;
      current = await size();
      onProgress?.(current);
      if (first) {
        first = false;
        // Aim for about 20 batches: big enough to be quick, small enough not to overshoot much.
        const perScale = Math.max(1, current - before) / scale;
        scale = Math.max(0.05, (targetBytes - empty) / 20 / perScale);
      }
    }
    await client.query('vacuum analyze');
    const { rows } = await client.query<{ tables: number; rows: string }>(`select count(*)::int as tables, sum(n_live_tup)::bigint as rows from pg_stat_user_tables`);
    return { bytes: await size(), tables: rows[0]!.tables, rows: Number(rows[0]!.rows), seconds: (performance.now() - started) / 1000 };
  } finally {
    await client.end().catch(() => {});
  }
}
