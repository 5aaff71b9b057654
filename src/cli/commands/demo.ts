import type { Command } from 'commander';
import pg from 'pg';
import { BackstopError } from '../../core/errors.ts';
import { claimRunById, createRun, listRuns } from '../../db/runs.ts';
import { ensureTarget } from '../../db/targets.ts';
import { restoreArtifact } from '../../pipeline/restore.ts';
import { readManifest } from '../../pipeline/readManifest.ts';
import { openStore } from '../../storage/openStore.ts';
import { createDatabaseIfMissing } from '../catalog.ts';
import type { CommandContext } from '../context.ts';
import { describeRun, table } from '../output.ts';
import { runInForeground } from './runInForeground.ts';

const SAMPLE_DATABASE = 'backstop_sample';
const RESTORED_DATABASE = 'backstop_sample_restored';

/** A small but varied sample: several types, a foreign key, a view, a sequence. */
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

export function registerDemoCommand(program: Command, context: () => CommandContext): void {
  program
    .command('demo')
    .description('On the embedded defaults: create a sample database, back it up, restore it into a second database, print the runs.')
    .action(async () => {
      const ctx = context();
      const { pool, embedded } = await ctx.catalog();
      if (!embedded) {
        throw new BackstopError('INVALID_INPUT', 'The demo creates its sample databases in the embedded Postgres: unset BACKSTOP_DATABASE_URL to run it.');
      }
      const say = (line: string) => process.stdout.write(`${line}\n`);
      say(`Catalog: embedded PostgreSQL in ${embedded.dataDir}`);
      await createDatabaseIfMissing(embedded.url(), SAMPLE_DATABASE);
      const sampleUrl = embedded.url(SAMPLE_DATABASE);
      await withClient(sampleUrl, (client) => client.query(sampleSql));
      say(`Sample database ${SAMPLE_DATABASE}: 2,000 customers, 10,000 orders`);

      const target = await ensureTarget(pool, { name: 'sample', databaseUrl: sampleUrl, storeUrl: ctx.config.defaultStoreUrl });
      const queued = await createRun(pool, { targetId: target.id, trigger: 'demo', runDeadlineMs: ctx.config.runDeadlineMs });
      const claimed = await claimRunById(pool, queued.id, { leaseTtlMs: ctx.config.leaseTtlMs, claimedBy: `demo:${process.pid}` });
      const run = await runInForeground(ctx, claimed, {});
      if (run.status !== 'succeeded' || !run.artifact) return;

      await withClient(embedded.url(), async (client) => {
        await client.query(`drop database if exists ${client.escapeIdentifier(RESTORED_DATABASE)} with (force)`);
        await client.query(`create database ${client.escapeIdentifier(RESTORED_DATABASE)}`);
      });
      const store = await openStore(run.artifact.storeUrl);
      try {
        const { manifest } = await readManifest(store, run.artifact.prefix);
        const restored = await restoreArtifact({
          store,
          prefix: run.artifact.prefix,
          manifest,
          toUrl: embedded.url(RESTORED_DATABASE),
          pgTools: ctx.config.pgTools,
        });
        say(`Restored into ${RESTORED_DATABASE}: ${restored.tablesChecked} tables, row counts match the manifest`);
      } finally {
        await store.close();
      }
      const runs = await listRuns(pool, { limit: 10 });
      say('');
      say(table(['ID', 'TARGET', 'STATUS', 'CREATED'], runs.map((r) => [r.id, r.targetName, r.status, r.createdAt])));
      say('');
      say(describeRun(run));
      say('The embedded catalog keeps running for the next command; stop it with `npm run -s backstop -- catalog stop`.');
    });
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
