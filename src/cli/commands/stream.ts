import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { startStreamSupervisor } from '../../control/streamSupervisor.ts';
import { findContinuousStream } from '../../operations/findContinuousStream.ts';
import { workerName } from '../../control/worker.ts';
import type { CommandContext } from '../context.ts';

export function registerStreamCommand(program: Command, context: () => CommandContext): void {
  program
    .command('stream')
    .description('Stream one continuous target into its change archive, in the foreground, until SIGINT/SIGTERM (the worker and the server do this for every continuous target).')
    .argument('<target>', 'the continuous target')
    .option('--poll-interval <seconds>', 'how often to try for the stream while another streamer holds it', '0.5')
    .action(async (targetName: string, options: { pollInterval: string }) => {
      const ctx = context();
      const pollIntervalMs = Number(options.pollInterval) * 1000;
      if (!Number.isFinite(pollIntervalMs) || pollIntervalMs <= 0) throw new BackstopError('INVALID_INPUT', `--poll-interval must be a number above 0, got "${options.pollInterval}".`);
      const { pool } = await ctx.catalog();
      const stream = await findContinuousStream(pool, targetName);
      const owner = workerName();
      const supervisor = startStreamSupervisor({ pool, log: ctx.log, config: ctx.config }, { owner, limit: 1, pollIntervalMs, targetId: stream.targetId });
      const onSignal = (signal: NodeJS.Signals) => {
        ctx.log.info({ signal }, 'storing what was received, then stopping');
        void supervisor.stop();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      ctx.log.info({ target: targetName, owner }, 'stream started');
      await supervisor.done;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      ctx.log.info('stream stopped');
    });
}
