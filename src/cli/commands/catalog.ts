import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { scratchClusterHome, stopEmbeddedPostgres } from '../../db/embeddedPostgres.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../output.ts';

export function registerCatalogCommands(program: Command, context: () => CommandContext): void {
  const catalog = program.command('catalog').description('The catalog database.');
  catalog
    .command('migrate')
    .description('Connect to the catalog (starting the embedded one if needed) and apply pending migrations.')
    .option('--json', 'print the catalog as JSON')
    .action(async (options: { json?: boolean }) => {
      const ctx = context();
      const { embedded } = await ctx.catalog();
      if (options.json) printJson({ ready: true, embedded: embedded ? { port: embedded.port, dataDir: embedded.dataDir } : null });
      else process.stdout.write(embedded ? `Catalog ready: embedded PostgreSQL on 127.0.0.1:${embedded.port} (${embedded.dataDir})\n` : 'Catalog ready.\n');
    });
  catalog
    .command('stop')
    .description("Stop the embedded catalog server and the drills' scratch server under BACKSTOP_HOME.")
    .option('--json', 'print what was stopped as JSON')
    .action(async (options: { json?: boolean }) => {
      const ctx = context();
      const say = (line: string) => {
        if (!options.json) process.stdout.write(`${line}\n`);
      };
      // Drills use a scratch cluster of their own whether the catalog is embedded or not.
      const scratchStopped = await stopEmbeddedPostgres(scratchClusterHome(ctx.config.home));
      if (scratchStopped) say('Embedded scratch server stopped.');
      let catalogStopped: boolean | null = null;
      if (ctx.config.databaseUrl) {
        if (!scratchStopped) throw new BackstopError('INVALID_INPUT', 'BACKSTOP_DATABASE_URL is set: the catalog is not embedded, nothing to stop.');
      } else {
        catalogStopped = await stopEmbeddedPostgres(ctx.config.home);
        say(catalogStopped ? 'Embedded catalog stopped.' : 'The embedded catalog was not running.');
      }
      if (options.json) printJson({ catalogStopped, scratchStopped });
    });
}
