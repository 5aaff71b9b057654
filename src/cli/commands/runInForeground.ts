import { BackstopError, errorCodes, type ErrorCode } from '../../core/errors.ts';
import type { ClaimedRun, RunRecord } from '../../db/runRecords.ts';
import { executeRun } from '../../runner/executeRun.ts';
import type { RunnerDeps } from '../../runner/runnerDeps.ts';
import type { RunnerCatalog } from '../../runner/runnerCatalog.ts';
import type { CommandContext } from '../context.ts';
import { describeRun, printJson, runJson } from '../output.ts';
import { createProgressReporter } from '../progressReporter.ts';

/**
 * Executes a claimed run in this process and reports it. SIGINT and SIGTERM cancel the run
 * (GitHub Actions sends SIGINT, then SIGTERM 7.5 s later): the dump is stopped, partial
 * objects removed, and `cancelled` recorded before the process exits on its own.
 */
export async function runInForeground(
  ctx: CommandContext,
  run: ClaimedRun,
  options: {
    json?: boolean;
    /** A remote runner's catalog (over HTTP) and the server's lease settings; default: the catalog by SQL. */
    remote?: { catalog: RunnerCatalog; leaseTtlMs: number; heartbeatIntervalMs: number };
  },
): Promise<RunRecord> {
  const remote = options.remote;
  const deps: RunnerDeps = remote
    ? { catalog: remote.catalog, config: { ...ctx.config, leaseTtlMs: remote.leaseTtlMs, heartbeatIntervalMs: remote.heartbeatIntervalMs }, log: ctx.log }
    : { db: (await ctx.catalog()).pool, config: ctx.config, log: ctx.log };
  const progress = createProgressReporter(!options.json);
  const execution = executeRun(deps, run, {
    onProgress: (next) => progress.update({ phase: next.phase, done: next.bytesDumped, elapsedMs: next.elapsedMs }),
  });
  const onSignal = (signal: NodeJS.Signals) => {
    ctx.log.warn({ signal, runId: run.id }, 'signal received; cancelling the run');
    execution.stop({ kind: 'cancel', reason: `Cancelled: the runner received ${signal}.` });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const finished = await execution.result;
    progress.done();
    if (!finished) throw new BackstopError('INTERNAL', `Run ${run.id} was handed back without an outcome.`);
    if (options.json) printJson(runJson(finished));
    else process.stdout.write(`${describeRun(finished)}\n`);
    if (finished.status !== 'succeeded') process.exitCode = exitCodeFor(finished);
    return finished;
  } finally {
    progress.done();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function exitCodeFor(run: RunRecord): number {
  if (run.status === 'succeeded') return 0;
  const code = run.error?.code as ErrorCode | undefined;
  return (code && errorCodes[code]?.exitCode) || 1;
}
