import type { Command } from 'commander';
import { bundledFiles } from '../../core/bundledFiles.ts';
import { BackstopError } from '../../core/errors.ts';
import { quickstart } from '../../operations/quickstart.ts';
import { SAMPLE_DATABASE } from '../../operations/sampleDatabase.ts';
import type { RunningServer } from '../../server/startServer.ts';
import type { CommandContext } from '../context.ts';
import { withAlarmRepeat } from './worker.ts';

interface ServerFlags {
  host: string;
  port: string;
  worker: boolean;
  concurrency: string;
  pollInterval: string;
  drainTimeout: string;
  quickstart?: boolean;
  alarmRepeat?: string;
}

export function registerServerCommand(program: Command, context: () => CommandContext): void {
  program
    .command('server')
    .description('Serve the HTTP API (and the dashboard) with an in-process worker; also reaps overdue runs. Stops on SIGINT/SIGTERM.')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', '8080')
    .option('--no-worker', 'do not execute runs in this process (API and reaper only)')
    .option('--concurrency <n>', 'runs executed at once by the in-process worker', '1')
    .option('--poll-interval <seconds>', 'how often the worker looks for queued runs', '1')
    .option('--drain-timeout <seconds>', 'on shutdown, how long running backups may finish before they are handed back', '5')
    .option('--alarm-repeat <seconds>', 'send an active alarm again every this many seconds while it lasts (0: once only; default BACKSTOP_ALARM_REPEAT, 4 hours)')
    .option('--quickstart', 'first start: add a sample target (embedded catalog) when there is none, and print a new admin token when there is none')
    .action(async (flags: ServerFlags, command: Command) => {
      const ctx = context();
      if (!/^[A-Za-z0-9.:_-]+$/.test(flags.host)) {
        throw new BackstopError(
          'INVALID_INPUT',
          `--host "${flags.host}" is not an address or host name; use 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or a name of this machine.`,
        );
      }
      // The in-process worker's settings do nothing without it: say so rather than ignore them.
      const workerFlags = ['concurrency', 'pollInterval', 'drainTimeout'].filter((flag) => command.getOptionValueSource(flag) === 'cli');
      if (!flags.worker && workerFlags.length > 0) {
        const given = workerFlags.map((flag) => `--${flag.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`).join(', ');
        throw new BackstopError('INVALID_INPUT', `${given} set the in-process worker, which --no-worker turns off; drop ${workerFlags.length === 1 ? 'it' : 'them'}, or --no-worker.`);
      }
      const port = number('--port', flags.port, { integer: true, min: 0, max: 65535 });
      const concurrency = number('--concurrency', flags.concurrency, { integer: true, min: 1, max: 64 });
      const pollIntervalMs = number('--poll-interval', flags.pollInterval, { min: 0.01 }) * 1000;
      const drainTimeoutMs = number('--drain-timeout', flags.drainTimeout, { min: 0 }) * 1000;
      const config = withAlarmRepeat(ctx.config, flags.alarmRepeat === undefined ? undefined : number('--alarm-repeat', flags.alarmRepeat, { min: 0 }));
      const catalog = await ctx.catalog();
      const say = (line: string) => process.stdout.write(`${line}\n`);
      if (flags.quickstart) printQuickstart(await quickstart(catalog, ctx.config), say);

      // Handlers first: a signal that arrives while starting, or right after the ready line was
      // read by whoever started us, must shut down cleanly rather than kill the process.
      let signalled: NodeJS.Signals | null = null;
      let server: RunningServer | null = null;
      let stopped: () => void = () => {};
      const done = new Promise<void>((resolve) => (stopped = resolve));
      const onSignal = (signal: NodeJS.Signals) => {
        ctx.log.info({ signal }, 'shutting down');
        signalled ??= signal;
        if (server) void server.close(`received ${signal}`).finally(stopped);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        // Loaded here, not at the top: Fastify and its plugins would slow down every other command.
        const { startServer } = await import('../../server/startServer.ts');
        server = await startServer(
          { pool: catalog.pool, config, log: ctx.log },
          { host: flags.host, port, worker: flags.worker ? { concurrency, pollIntervalMs, drainTimeoutMs } : null },
        );
        if (signalled) {
          await server.close(`received ${signalled}`);
        } else {
          say(`Backstop is serving ${server.url} (API: ${server.url}/api/v1, OpenAPI: ${server.url}/api/openapi.json)`);
          say(bundledFiles ? 'No dashboard: the single executable serves the API alone (the npm package has the dashboard).' : `Dashboard: ${server.url}/ (sign in with an API token).`);
          say(server.worker ? `In-process worker ${server.worker.name}, concurrency ${concurrency}.` : 'No in-process worker (--no-worker).');
          say('Stop with Ctrl-C (SIGINT) or SIGTERM.');
          await done;
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      ctx.log.info('server stopped');
    });
}

/** What a first start made: the sample target and its first run, and the admin token, shown once (never logged). */
function printQuickstart(made: Awaited<ReturnType<typeof quickstart>>, say: (line: string) => void): void {
  if (made.sample) {
    say(`Added target "${made.sample.target}": the database ${SAMPLE_DATABASE} in the embedded PostgreSQL (2,000 customers, 10,000 orders).`);
    say(`Queued a first backup of "${made.sample.target}": run ${made.sample.runId} (follow it with \`backstop runs show ${made.sample.runId}\`).`);
  } else if (made.sampleNeedsEmbedded) {
    say('No targets yet; the sample target needs the embedded catalog (BACKSTOP_DATABASE_URL is set). Add one with POST /api/v1/targets.');
  }
  if (made.adminToken) {
    say('');
    say('Admin API token (shown once; store it now, revoke it with `backstop token revoke ID`):');
    say(`  ${made.adminToken}`);
    say('');
  }
}

function number(flag: string, value: string, rules: { integer?: boolean; min: number; max?: number }): number {
  const parsed = Number(value);
  const ok = value.trim() !== '' && Number.isFinite(parsed) && parsed >= rules.min && (rules.max === undefined || parsed <= rules.max) && (!rules.integer || Number.isInteger(parsed));
  if (!ok) {
    const range = rules.max === undefined ? `at least ${rules.min}` : `from ${rules.min} to ${rules.max}`;
    throw new BackstopError('INVALID_INPUT', `${flag} must be a ${rules.integer ? 'whole ' : ''}number ${range}, got "${value}".`);
  }
  return parsed;
}
