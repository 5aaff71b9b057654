import { Command, CommanderError, Option } from 'commander';
import { BackstopError, errorCodes, type ErrorCode } from '../core/errors.ts';
import { redactText } from '../core/databaseUrl.ts';
import { isConnectionLost } from '../core/pgErrors.ts';
import { BACKSTOP_VERSION } from '../version.ts';
import { registerAlarmCommand } from './commands/alarms.ts';
import { registerAuditCommand } from './commands/audit.ts';
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
import { registerStreamCommand } from './commands/stream.ts';
import { registerScheduleCommands } from './commands/schedule.ts';
import { registerChannelCommands } from './commands/channels.ts';
import { registerTargetCommands } from './commands/targets.ts';
import { registerTokenCommands } from './commands/token.ts';
import { registerVerifyCommand } from './commands/verify.ts';
import { registerWorkerCommand } from './commands/worker.ts';
import { createContext, type CommandContext } from './context.ts';
import { describeOsError } from './osError.ts';
import { jsonDocumentPrinted, printJson } from './output.ts';

/**
 * The one place errors become exit codes. No process.exit(): the exit code is set and the
 * process ends when its work (and the final report) is done.
 */
export async function main(argv: string[]): Promise<void> {
  silenceClosedOutput();
  let ctx: CommandContext | undefined;
  const context = () => (ctx ??= createContext({ defaultLogLevel: longRunning(argv) ? 'info' : 'error', errorStacks: longRunning(argv) }));
  const program = createProgram(context);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    process.exitCode = report(error, wantsJson(argv));
  } finally {
    await ctx?.close().catch(() => {});
  }
}

/** Every command, registered; the context is built only when a command's action runs. */
export function createProgram(context: () => CommandContext): Command {
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
  registerChannelCommands(program, context);
  registerRunCommands(program, context);
  registerWorkerCommand(program, context);
  registerStreamCommand(program, context);
  registerRestoreCommand(program, context);
  registerVerifyCommand(program, context);
  registerImportCommand(program, context);
  registerDemoCommand(program, context);
  registerCatalogCommands(program, context);
  registerServerCommand(program, context);
  registerTokenCommands(program, context);
  registerPruneCommand(program, context);
  registerAuditCommand(program, context);
  registerScheduleCommands(program, context);
  registerAlarmCommand(program, context);
  registerKeygenCommand(program);
  registerInitCommand(program);
  registerReportCommand(program, context);
  for (const [command, path] of everyCommand(program)) {
    // A usage error points at the help of the command that was typed, not at the whole program's,
    // in the JSON document too (the hint commander prints goes to stderr only).
    command.showHelpAfterError(`(run \`backstop ${path} --help\` for usage)`);
    command.exitOverride((error) => {
      throw Object.assign(error, { commandPath: path });
    });
    if (runnable(command) && !command.options.some((option) => option.long === '--json')) refuseJson(command, path);
  }
  return program;
}

/** Every command and subcommand under `root`, with its path as typed (`runs show`). */
export function everyCommand(root: Command, prefix: string[] = []): Array<[Command, string]> {
  return root.commands.flatMap((command) => {
    const path = [...prefix, command.name()];
    return [[command, path.join(' ')] as [Command, string], ...everyCommand(command, path)];
  });
}

/** Whether a command does something itself (`runs` does; `target` only groups its subcommands). */
export function runnable(command: Command): boolean {
  // commander keeps the action in a private field; a group without one prints its help.
  return (command as unknown as { _actionHandler: unknown })._actionHandler != null;
}

/**
 * A command with no result to print (a worker, the server, the demo) still accepts `--json`, to
 * refuse it with the reason: a script that asks for a document learns why there is none, as
 * one document (exit 2), instead of an "unknown option".
 */
function refuseJson(command: Command, path: string): void {
  command.addOption(new Option('--json').hideHelp());
  command.hook('preAction', (_command, actionCommand) => {
    if (actionCommand.opts().json !== true) return;
    throw new BackstopError(
      'INVALID_INPUT',
      `\`backstop ${path}\` prints no result to read as JSON; drop --json. Its logs go to stderr, as JSON lines when stderr is not a terminal or BACKSTOP_LOG_FORMAT=json.`,
    );
  });
}

function longRunning(argv: string[]): boolean {
  return argv.includes('worker') || argv.includes('server') || argv.includes('stream');
}

/** `--json` anywhere before a `--`: every outcome, errors too, is one JSON document on stdout. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * `backstop runs show ID | head -1`: once the reader is gone, nothing more is written and the
 * process ends quietly (exit 0), as other command-line tools do, instead of dying on EPIPE.
 */
function silenceClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      stream.write = (() => true) as typeof stream.write;
    });
  }
}

function report(error: unknown, json: boolean): number {
  const { code, message, exitCode, printed } = classify(error);
  if (!printed && message) process.stderr.write(`backstop: ${message}\n`);
  // One document: a command that already printed its outcome (a failed run, a prune report) is not followed by a second.
  if (json && code && !jsonDocumentPrinted()) printJson({ error: { code, message: message.replace(/ \[[A-Z_]+\]$/, '') } });
  return exitCode;
}

function classify(error: unknown): { code: ErrorCode | null; message: string; exitCode: number; printed?: boolean } {
  if (error instanceof CommanderError) {
    // Help and version exit 0; usage errors were already printed by commander.
    if (error.exitCode === 0) return { code: null, message: '', exitCode: 0 };
    const help = `backstop ${(error as CommanderError & { commandPath?: string }).commandPath ?? ''} --help`.replace('  ', ' ');
    return { code: 'INVALID_INPUT', message: `${error.message.replace(/^error: /, '').replace(/\.?$/, '.')} Run \`${help}\` for usage.`, exitCode: 2, printed: true };
  }
  const os = describeOsError(error);
  if (os) return { code: os.code, message: `${os.message} [${os.code}]`, exitCode: errorCodes[os.code].exitCode };
  if (error instanceof BackstopError) {
    return { code: error.code, message: `${error.message} [${error.code}]`, exitCode: errorCodes[error.code].exitCode };
  }
  if (isConnectionLost(error)) {
    return {
      code: 'CATALOG_UNAVAILABLE',
      message: `lost the connection to the catalog: ${redactText((error as Error)?.message ?? String(error))}. Run the command again once it is reachable. [CATALOG_UNAVAILABLE]`,
      exitCode: errorCodes.CATALOG_UNAVAILABLE.exitCode,
    };
  }
  // A bug: the stack is what a report needs, but only when asked for; one line otherwise.
  const detail = process.env.BACKSTOP_LOG_LEVEL === 'debug' || process.env.BACKSTOP_LOG_LEVEL === 'trace' ? (error as Error)?.stack : undefined;
  return {
    code: 'INTERNAL',
    message: `unexpected error: ${redactText(detail ?? (error as Error)?.message ?? String(error))}. Run it again with BACKSTOP_LOG_LEVEL=debug for the details and report it. [INTERNAL]`,
    exitCode: 1,
  };
}
