import { Command, CommanderError } from 'commander';
import { BackstopError, errorCodes } from '../core/errors.ts';
import { redactText } from '../core/databaseUrl.ts';
import { isConnectionLost } from '../db/pool.ts';
import { BACKSTOP_VERSION } from '../core/version.ts';
import { registerBackupCommands } from './commands/backup.ts';
import { registerCatalogCommands } from './commands/catalog.ts';
import { registerDemoCommand } from './commands/demo.ts';
import { registerImportCommand } from './commands/import.ts';
import { registerInitCommand } from './commands/init.ts';
import { registerKeygenCommand } from './commands/keygen.ts';
import { registerPruneCommand } from './commands/prune.ts';
import { registerReportCommand } from './commands/report.ts';
import { registerRestoreCommand } from './commands/restore.ts';
import { registerRunCommands } from './commands/runs.ts';
import { registerServerCommand } from './commands/server.ts';
import { registerScheduleCommands } from './commands/schedule.ts';
import { registerTargetCommands } from './commands/targets.ts';
import { registerTokenCommands } from './commands/token.ts';
import { registerVerifyCommand } from './commands/verify.ts';
import { registerWorkerCommand } from './commands/worker.ts';
import { createContext, type CommandContext } from './context.ts';

/**
 * The one place errors become exit codes. No process.exit(): the exit code is set and the
 * process ends when its work (and the final report) is done.
 */
export async function main(argv: string[]): Promise<void> {
  let ctx: CommandContext | undefined;
  const context = () => (ctx ??= createContext({ defaultLogLevel: longRunning(argv) ? 'info' : 'error' }));
  const program = new Command()
    .name('backstop')
    .description('PostgreSQL and Supabase backups whose run status never lies.')
    .version(BACKSTOP_VERSION)
    .exitOverride()
    .showHelpAfterError('(run `backstop --help` for usage)')
    .enablePositionalOptions()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  registerBackupCommands(program, context);
  registerTargetCommands(program, context);
  registerRunCommands(program, context);
  registerWorkerCommand(program, context);
  registerRestoreCommand(program, context);
  registerVerifyCommand(program, context);
  registerImportCommand(program, context);
  registerDemoCommand(program, context);
  registerCatalogCommands(program, context);
  registerServerCommand(program, context);
  registerTokenCommands(program, context);
  registerPruneCommand(program, context);
  registerScheduleCommands(program, context);
  registerKeygenCommand(program);
  registerInitCommand(program);
  registerReportCommand(program, context);
  for (const command of program.commands) command.exitOverride();

  try {
    await program.parseAsync(argv);
  } catch (error) {
    process.exitCode = report(error);
  } finally {
    await ctx?.close().catch(() => {});
  }
}

function longRunning(argv: string[]): boolean {
  return argv.includes('worker') || argv.includes('server');
}

function report(error: unknown): number {
  if (error instanceof CommanderError) {
    // Help and version exit 0; usage errors were already printed by commander.
    return error.exitCode === 0 ? 0 : 2;
  }
  if (error instanceof BackstopError) {
    process.stderr.write(`backstop: ${error.message} [${error.code}]\n`);
    return errorCodes[error.code].exitCode;
  }
  if (isConnectionLost(error)) {
    process.stderr.write(
      `backstop: lost the connection to the catalog: ${redactText((error as Error)?.message ?? String(error))}. Run the command again once it is reachable. [CATALOG_UNAVAILABLE]\n`,
    );
    return errorCodes.CATALOG_UNAVAILABLE.exitCode;
  }
  process.stderr.write(`backstop: unexpected error: ${redactText((error as Error)?.stack ?? String(error))}\n`);
  return 1;
}
