import type { Command } from 'commander';
import { importBackups } from '../../control/importBackups.ts';
import { openStore } from '../../storage/openStore.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../output.ts';
import { storeUrlFor } from './targetOptions.ts';

export function registerImportCommand(program: Command, context: () => CommandContext): void {
  program
    .command('import')
    .description('Rebuild catalog entries from the manifests in a bucket or folder (after losing the catalog).')
    .argument('<store-url>', 'file:///path, a folder, or s3://bucket/prefix')
    .option('--json', 'print the outcome as JSON')
    .action(async (storeUrl: string, options: { json?: boolean }) => {
      const ctx = context();
      const store = await openStore(storeUrlFor(storeUrl));
      try {
        const { pool } = await ctx.catalog();
        const outcome = await importBackups(pool, store);
        if (options.json) {
          printJson(outcome);
          return;
        }
        process.stdout.write(`Imported ${outcome.imported.length} backup(s) from ${store.url}\n`);
        for (const item of outcome.imported) process.stdout.write(`  + ${item.runId}  ${item.target}  ${item.prefix}\n`);
        for (const item of outcome.skipped) process.stdout.write(`  = ${item.runId}  ${item.reason}\n`);
        for (const item of outcome.invalid) process.stdout.write(`  ! ${item.prefix}  ${item.reason}\n`);
      } finally {
        await store.close();
      }
    });
}
