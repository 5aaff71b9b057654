import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { claimRunById } from '../../db/runLeases.ts';
import { listRuns } from '../../db/runListing.ts';
import { createRun } from '../../db/runRecords.ts';
import { ensureTarget } from '../../db/targets.ts';
import { restoreArtifact } from '../../pipeline/restore.ts';
import { readManifest } from '../../pipeline/readManifest.ts';
import { openStore } from '../../storage/openStore.ts';
import type { CommandContext } from '../context.ts';
import { ensureSampleDatabase, SAMPLE_DATABASE, withClient } from '../sampleDatabase.ts';
import { describeRun, table } from '../output.ts';
import { runInForeground } from './runInForeground.ts';

const RESTORED_DATABASE = 'backstop_sample_restored';

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
      const sampleUrl = await ensureSampleDatabase(embedded);
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
      say(
        table(
          ['ID', 'TARGET', 'STATUS', 'CREATED'],
          runs.map((r) => [r.id, r.targetName, r.status, r.createdAt]),
        ),
      );
      say('');
      say(describeRun(run));
      say('The embedded catalog keeps running for the next command; stop it with `npm run -s backstop -- catalog stop`.');
    });
}
