import pg from 'pg';
import { createDatabaseIfMissing } from '../db/createDatabaseIfMissing.ts';
import type { EmbeddedInstance } from '../db/embeddedPostgres.ts';

/** The sample database `demo` and `npm start` create in the embedded Postgres, next to the catalog. */
export const SAMPLE_DATABASE = 'backstop_sample';

/** A small but varied sample: several types, a foreign key, a view, a sequence. Idempotent. */
const sampleSql = `
  create table if not exists customers (
    id bigint generated always as identity primary key,
    email text not null unique,
    profile jsonb not null default '{}',
    created_at timestamptz not null default now()
  );
  create table if not exists orders (
    id uuid primary key default gen_random_uuid(),
    customer_id bigint not null references customers (id),
    total numeric(12, 2) not null,
    note text,
    attachment bytea
  );
  create or replace view order_totals as
    select customer_id, count(*) as orders, sum(total) as total from orders group by customer_id;
  insert into customers (email, profile)
    select 'customer' || i || '@example.com', jsonb_build_object('tier', i % 3, 'tags', jsonb_build_array('a', i))
    from generate_series(1, 2000) as i
    on conflict (email) do nothing;
  insert into orders (customer_id, total, note, attachment)
    select 1 + (i % 2000), round((random() * 500)::numeric, 2), repeat('note ', i % 7), decode(md5(i::text), 'hex')
    from generate_series(1, 10000) as i
    where (select count(*) from orders) = 0;
`;

/** Creates (or completes) the sample database: 2,000 customers and 10,000 orders. Returns its URL. */
export async function ensureSampleDatabase(embedded: EmbeddedInstance): Promise<string> {
  await createDatabaseIfMissing(embedded.url(), SAMPLE_DATABASE);
  const sampleUrl = embedded.url(SAMPLE_DATABASE);
  await withClient(sampleUrl, (client) => client.query(sampleSql));
  return sampleUrl;
}

/** Drops a database of the embedded server (if it exists) and creates it empty: where the demo restores. */
export async function recreateDatabase(embedded: EmbeddedInstance, name: string): Promise<string> {
  await withClient(embedded.url(), async (client) => {
    await client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`);
    await client.query(`create database ${client.escapeIdentifier(name)}`);
  });
  return embedded.url(name);
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
