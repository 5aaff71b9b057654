import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { getStream } from '../../db/continuousStreams.ts';
import { getTarget } from '../../db/targets.ts';
import { startStreamSupervisor } from '../../continuous/streamSupervisor.ts';
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
      const target = await getTarget(pool, targetName);
      const stream = await getStream(pool, target.id);
      if (!stream) throw new BackstopError('INVALID_INPUT', `Target ${targetName} is not continuous. Make it so with \`backstop target update ${targetName} --continuous\`.`);
      if (stream.state === 'stopped') throw new BackstopError('INVALID_INPUT', `The stream of ${targetName} is stopped: ${stream.stoppedReason ?? 'no reason recorded'}.`);
      const owner = workerName();
      const supervisor = startStreamSupervisor({ pool, log: ctx.log, config: ctx.config }, { owner, limit: 1, pollIntervalMs, targetId: target.id });
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
