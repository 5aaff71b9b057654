import { setTimeout } from 'node:timers/promises';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { isTerminal, runStatuses } from '../../core/runState.ts';
import { cancelRun } from '../../operations/cancelRun.ts';
import { listRunEvents } from '../../operations/listRunEvents.ts';
import { listRuns, MAX_PAGE_SIZE, type RunListQuery } from '../../operations/listRuns.ts';
import { resolveRunId } from '../../operations/resolveRunId.ts';
import type { RunRecord } from '../../operations/runRecord.ts';
import { triggerBackup } from '../../operations/triggerBackup.ts';
import type { Queryable } from '../../operations/openCatalog.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes } from '../../core/formatBytes.ts';
import { describeRun, printJson, runJson, table } from '../output.ts';
import { createProgressDisplay } from '../progressDisplay.ts';
import { exitCodeFor } from './runInForeground.ts';
import { sayingFlags } from './targetOptions.ts';

/** How often `runs show --follow` reads the run: its progress changes about once a second. */
const FOLLOW_POLL_MS = 500;

/**
 * Prints a run's events as they are recorded and shows its progress, until it ends. Reads the
 * catalog as the API's event stream does (events after the last one seen), so it follows a run
 * on any runner: a worker, a GitHub Actions job, another machine's `backstop run`.
 */
async function followRun(db: Queryable, runId: string, show: boolean): Promise<void> {
  const display = createProgressDisplay(show);
  let after = 0;
  try {
    for (;;) {
      const { run, events } = await listRunEvents(db, runId, after);
      for (const event of events) {
        after = Math.max(after, Number(event.id));
        if (!show) continue;
        display.done();
        process.stderr.write(`${event.at}  ${event.kind}${event.status ? ` (${event.status})` : ''}${event.message ? `  ${event.message}` : ''}\n`);
      }
      if (isTerminal(run.status)) return;
      if (run.progress) display.update(run.progress);
      await setTimeout(FOLLOW_POLL_MS);
    }
  } finally {
    display.done();
  }
}

/** The CLI shows up to this many runs at once, read in pages of the API's size. */
const MAX_LISTED = 1000;

async function newestRuns(db: Queryable, filter: Omit<RunListQuery, 'limit' | 'cursor' | 'offset'>, count: number): Promise<RunRecord[]> {
  const runs: RunRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await listRuns(db, { ...filter, limit: Math.min(MAX_PAGE_SIZE, count - runs.length), cursor });
    runs.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && runs.length < count);
  return runs;
}

export function registerRunCommands(program: Command, context: () => CommandContext): void {
  program
    .command('trigger')
    .description('Queue a backup run of a target and print its id; a worker (or `backstop run ID`) executes it.')
    .argument('<target>', 'target name')
    .option('--json', 'print the run as JSON')
    .action(async (targetName: string, options: { json?: boolean }) => {
      const ctx = context();
      const run = await sayingFlags({ target: 'TARGET' }, () => triggerBackup(ctx.db, ctx.config, { target: targetName }, { trigger: 'manual' }));
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
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LISTED) {
        throw new BackstopError('INVALID_INPUT', `--limit must be a whole number from 1 to ${MAX_LISTED}, got "${options.limit}".`);
      }
      const list = await sayingFlags({ target: '--target', status: '--status' }, () =>
        newestRuns(ctx.db, { target: options.target, status: options.status as RunListQuery['status'] }, limit),
      );
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
    .option('--follow', 'until the run ends: print its events as they happen and its progress (a bar on a terminal)')
    .action(async (input: string, options: { json?: boolean; follow?: boolean }) => {
      const ctx = context();
      const runId = await resolveRunId(ctx.db, input);
      if (options.follow) await followRun(ctx.db, runId, !options.json);
      const { run, events } = await listRunEvents(ctx.db, runId);
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
      const run = await cancelRun(ctx.db, await resolveRunId(ctx.db, input), 'backstop cancel');
      if (options.json) printJson(runJson(run));
      else if (run.status === 'cancelling') process.stdout.write(`Run ${run.id} is being cancelled; its runner stops at its next heartbeat.\n`);
      else process.stdout.write(`Run ${run.id} cancelled.\n`);
    });
}
