import type { Command } from 'commander';
import { importFromStore } from '../../operations/importFromStore.ts';
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
      const { outcome, storeUrl: url } = await importFromStore(ctx.db, storeUrlFor(storeUrl));
      if (options.json) {
        printJson(outcome);
        return;
      }
      process.stdout.write(`Imported ${outcome.imported.length} backup(s) from ${url}\n`);
      for (const item of outcome.imported) process.stdout.write(`  + ${item.runId}  ${item.target}  ${item.prefix}\n`);
      for (const item of outcome.skipped) process.stdout.write(`  = ${item.runId}  ${item.reason}\n`);
      for (const item of outcome.invalid) process.stdout.write(`  ! ${item.prefix}  ${item.reason}\n`);
    });
}
