import type { Command } from 'commander';
import type { Config } from '../../core/config.ts';
import { BackstopError } from '../../core/errors.ts';
import { startGithubExecutor } from '../../executors/github/githubExecutor.ts';
import { startWorker } from '../../control/worker.ts';
import { githubClient } from '../../executors/github/githubClient.ts';
import type { CommandContext } from '../context.ts';

export function registerWorkerCommand(program: Command, context: () => CommandContext): void {
  program
    .command('worker')
    .description('Claim and execute queued runs until SIGINT/SIGTERM; also reaps overdue runs.')
    .option('--concurrency <n>', 'runs executed at once by this worker', '1')
    .option('--poll-interval <seconds>', 'how often to look for queued runs', '1')
    .option('--drain-timeout <seconds>', 'on shutdown, how long running backups may finish before they are handed back', '5')
    .option('--alarm-repeat <seconds>', 'send an active alarm again every this many seconds while it lasts (0: once only; default BACKSTOP_ALARM_REPEAT, 4 hours)')
    .action(async (options: { concurrency: string; pollInterval: string; drainTimeout: string; alarmRepeat?: string }) => {
      const ctx = context();
      const concurrency = positive('--concurrency', options.concurrency, true);
      const pollIntervalMs = positive('--poll-interval', options.pollInterval) * 1000;
      const drainTimeoutMs = positive('--drain-timeout', options.drainTimeout, false, true) * 1000;
      const config = withAlarmRepeat(ctx.config, options.alarmRepeat === undefined ? undefined : positive('--alarm-repeat', options.alarmRepeat, false, true));
      const { pool } = await ctx.catalog();
      const worker = startWorker({ db: pool, config, log: ctx.log }, { concurrency, pollIntervalMs, drainTimeoutMs });
      // With a GitHub token, this process also dispatches runs of GitHub-executed targets and reconciles them.
      const github = ctx.config.github
        ? startGithubExecutor({
            db: pool,
            client: githubClient(ctx.config.github),
            log: ctx.log,
            startDeadlineMs: ctx.config.startDeadlineMs,
            intervalMs: Math.max(pollIntervalMs, 5000),
          })
        : null;
      const onSignal = (signal: NodeJS.Signals) => {
        ctx.log.info({ signal }, 'shutting down');
        void worker.stop(`received ${signal}`);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      // Only now: whoever waits for this line may signal at once, and must not kill the process.
      ctx.log.info({ worker: worker.name, concurrency }, 'worker started');
      await worker.done;
      github?.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      ctx.log.info('worker stopped');
    });
}

/** The configuration with `--alarm-repeat` (seconds) in place of BACKSTOP_ALARM_REPEAT, when given. */
export function withAlarmRepeat(config: Config, seconds: number | undefined): Config {
  return seconds === undefined ? config : { ...config, alarms: { ...config.alarms, repeatMs: seconds * 1000 } };
}

function positive(flag: string, value: string, integer = false, allowZero = false): number {
  const parsed = Number(value);
  const ok = Number.isFinite(parsed) && (allowZero ? parsed >= 0 : parsed > 0) && (!integer || Number.isInteger(parsed));
  if (!ok) throw new BackstopError('INVALID_INPUT', `${flag} must be a ${integer ? 'whole ' : ''}number${allowZero ? '' : ' above 0'}, got "${value}".`);
  return parsed;
}
