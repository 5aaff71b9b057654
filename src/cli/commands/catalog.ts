import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { stopEmbeddedServers } from '../../operations/stopEmbeddedServers.ts';
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
      const stopped = await stopEmbeddedServers(ctx.config);
      if (stopped.scratch) say('Embedded scratch server stopped.');
      if (stopped.catalog === null) {
        if (!stopped.scratch) throw new BackstopError('INVALID_INPUT', 'BACKSTOP_DATABASE_URL is set: the catalog is not embedded, nothing to stop.');
      } else {
        say(stopped.catalog ? 'Embedded catalog stopped.' : 'The embedded catalog was not running.');
      }
      if (options.json) printJson({ catalogStopped: stopped.catalog, scratchStopped: stopped.scratch });
    });
}
