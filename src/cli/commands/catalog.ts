import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { stopEmbeddedServers } from '../../operations/stopEmbeddedServers.ts';
import type { CommandContext } from '../context.ts';

export function registerCatalogCommands(program: Command, context: () => CommandContext): void {
  const catalog = program.command('catalog').description('The catalog database.');
  catalog
    .command('migrate')
    .description('Connect to the catalog (starting the embedded one if needed) and apply pending migrations.')
    .action(async () => {
      const ctx = context();
      const { embedded } = await ctx.catalog();
      process.stdout.write(embedded ? `Catalog ready: embedded PostgreSQL on 127.0.0.1:${embedded.port} (${embedded.dataDir})\n` : 'Catalog ready.\n');
    });
  catalog
    .command('stop')
    .description("Stop the embedded catalog server and the drills' scratch server under BACKSTOP_HOME.")
    .action(async () => {
      const ctx = context();
      const stopped = await stopEmbeddedServers(ctx.config);
      if (stopped.scratch) process.stdout.write('Embedded scratch server stopped.\n');
      if (stopped.catalog === null) {
        if (stopped.scratch) return;
        throw new BackstopError('INVALID_INPUT', 'BACKSTOP_DATABASE_URL is set: the catalog is not embedded, nothing to stop.');
      }
      process.stdout.write(stopped.catalog ? 'Embedded catalog stopped.\n' : 'The embedded catalog was not running.\n');
    });
}
