import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
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
        await assertFolderExists(store.url);
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

/**
 * A local store that does not exist holds nothing to import: a mistyped path would otherwise
 * import 0 backups and succeed. (A backup creates its folder; an import only reads.)
 */
async function assertFolderExists(storeUrl: string): Promise<void> {
  // A local store's url is `file://` and its absolute path, as is (see localStore).
  if (!storeUrl.startsWith('file://')) return;
  const folder = storeUrl.slice('file://'.length);
  const isFolder = await fs.stat(folder).then((stat) => stat.isDirectory(), () => false);
  if (!isFolder) throw new BackstopError('STORE_READ_FAILED', `No folder at ${folder}: check the path of the store to import from.`);
}
