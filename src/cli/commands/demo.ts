import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { claimRun } from '../../operations/claimRun.ts';
import { ensureSampleTarget } from '../../operations/ensureSampleTarget.ts';
import { listRuns } from '../../operations/listRuns.ts';
import { prepareRestore } from '../../operations/prepareRestore.ts';
import { recreateDatabase, SAMPLE_DATABASE } from '../../operations/sampleDatabase.ts';
import { triggerBackup } from '../../operations/triggerBackup.ts';
import type { CommandContext } from '../context.ts';
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
      const target = await ensureSampleTarget(pool, embedded, ctx.config);
      say(`Sample database ${SAMPLE_DATABASE}: 2,000 customers, 10,000 orders`);

      const queued = await triggerBackup(pool, ctx.config, { target: target.name }, { trigger: 'demo', actor: ctx.actor });
      const claimed = await claimRun(pool, ctx.config, queued.id, `demo:${process.pid}`);
      const run = await runInForeground(ctx, claimed, {});
      if (run.status !== 'succeeded') return;

      const restoreUrl = await recreateDatabase(embedded, RESTORED_DATABASE);
      const restore = await prepareRestore({ db: pool, config: ctx.config, log: ctx.log }, run.id, { databaseUrl: restoreUrl }, { via: 'cli', actor: ctx.actor });
      const restored = await restore.execute();
      say(`Restored into ${RESTORED_DATABASE}: ${restored.tablesChecked} tables, row counts match the manifest`);
      const runs = (await listRuns(pool, { limit: 10 })).items;
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
