import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { isTerminal, runStatuses, type RunStatus } from '../../core/runState.ts';
import { listRunEvents } from '../../db/runEvents.ts';
import { listRuns } from '../../db/runListing.ts';
import { createRun, getRun, requestCancel } from '../../db/runRecords.ts';
import { getTarget } from '../../db/targets.ts';
import type { CommandContext } from '../context.ts';
import { describeRun, formatBytes, printJson, runJson, table } from '../output.ts';
import { resolveRunId } from '../runIdArgument.ts';
import { exitCodeFor } from './runInForeground.ts';

export function registerRunCommands(program: Command, context: () => CommandContext): void {
  program
    .command('trigger')
    .description('Queue a backup run of a target and print its id; a worker (or `backstop run ID`) executes it.')
    .argument('<target>', 'target name')
    .option('--json', 'print the run as JSON')
    .action(async (targetName: string, options: { json?: boolean }) => {
      const ctx = context();
      const { pool } = await ctx.catalog();
      const target = await getTarget(pool, targetName);
      const run = await createRun(pool, { targetId: target.id, trigger: 'manual', runDeadlineMs: ctx.config.runDeadlineMs });
      if (options.json) printJson(runJson(run));
      else process.stdout.write(`${run.id}\n`);
    });

  const runs = program
    .command('runs')
    .enablePositionalOptions()
    .description('List backup runs, newest first.')
    .option('--target <name>', 'only this target')
    .option('--status <status>', `only this status (${runStatuses.join(', ')})`)
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action(async (options: { target?: string; status?: string; limit: string; json?: boolean }) => {
      const ctx = context();
      if (options.status && !(runStatuses as readonly string[]).includes(options.status)) {
        throw new BackstopError('INVALID_INPUT', `Unknown status "${options.status}". Use one of: ${runStatuses.join(', ')}.`);
      }
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new BackstopError('INVALID_INPUT', `--limit must be a whole number from 1 to 1000, got "${options.limit}".`);
      }
      const { pool } = await ctx.catalog();
      if (options.target) await getTarget(pool, options.target);
      const list = await listRuns(pool, { targetName: options.target, status: options.status as RunStatus | undefined, limit });
      if (options.json) {
        printJson(list.map(runJson));
        return;
      }
      if (list.length === 0) {
        process.stdout.write('No runs yet. Start one with `backstop backup DATABASE_URL` or `backstop trigger TARGET`.\n');
        return;
      }
      const rows = list.map((run) => [
        run.id,
        run.targetName,
        run.status,
        String(run.attempt),
        run.createdAt,
        run.artifact ? formatBytes(run.artifact.files.reduce((sum, file) => sum + file.size, 0)) : '',
        run.error ? run.error.code : '',
      ]);
      process.stdout.write(`${table(['ID', 'TARGET', 'STATUS', 'ATTEMPT', 'CREATED', 'SIZE', 'ERROR'], rows)}\n`);
    });

  runs
    .command('show')
    .description('Show one run with its events.')
    .argument('<run-id>', 'run id, or its first 8 characters')
    .option('--json', 'print JSON')
    .action(async (input: string, options: { json?: boolean }) => {
      const ctx = context();
      const { pool } = await ctx.catalog();
      const runId = await resolveRunId(pool, input);
      const run = await getRun(pool, runId);
      const events = await listRunEvents(pool, runId);
      // Like `run`: a run that ended other than succeeded exits with its error's code.
      if (isTerminal(run.status) && run.status !== 'succeeded') process.exitCode = exitCodeFor(run);
      if (options.json) {
        printJson({ ...runJson(run), events });
        return;
      }
      process.stdout.write(`${describeRun(run)}\n`);
      if (run.artifact) {
        for (const file of [...run.artifact.files, run.artifact.manifest]) {
          process.stdout.write(`  ${file.name}  ${formatBytes(file.size)}  sha256:${file.sha256}\n`);
        }
      }
      process.stdout.write(
        `${table(
          ['AT', 'ATTEMPT', 'EVENT', 'STATUS', 'MESSAGE'],
          events.map((e) => [e.at, String(e.attempt), e.kind, e.status ?? '', e.message ?? '']),
        )}\n`,
      );
    });

  program
    .command('cancel')
    .description('Cancel a run: a queued one ends at once, a running one is stopped through its heartbeat.')
    .argument('<run-id>', 'run id, or its first 8 characters')
    .option('--json', 'print the run as JSON')
    .action(async (input: string, options: { json?: boolean }) => {
      const ctx = context();
      const { pool } = await ctx.catalog();
      const run = await requestCancel(pool, await resolveRunId(pool, input), 'Cancelled on request (backstop cancel).');
      if (options.json) printJson(runJson(run));
      else if (run.status === 'cancelling') process.stdout.write(`Run ${run.id} is being cancelled; its runner stops at its next heartbeat.\n`);
      else process.stdout.write(`Run ${run.id} cancelled.\n`);
    });
}
