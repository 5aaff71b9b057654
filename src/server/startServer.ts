import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { bundledFiles } from '../core/bundledFiles.ts';
import type { Config } from '../core/config.ts';
import { BackstopError } from '../core/errors.ts';
import { startReaper, type Reaper } from '../control/reaper.ts';
import { startWorker, workerName, type Worker } from '../control/worker.ts';
import { startStreamSupervisor } from '../control/streamSupervisor.ts';
import { startGithubExecutor } from '../executors/github/githubExecutor.ts';
import { startNotifier } from '../control/notifier.ts';
import { startPruner } from '../control/pruner.ts';
import { startAlarmEvaluator } from '../control/alarmEvaluator.ts';
import { startScheduler } from '../control/scheduler.ts';
import { githubClient } from '../executors/github/githubClient.ts';
import type { Pool } from '../db/pool.ts';
import { buildApp, type AppOptions } from './app.ts';
import { createServerMetrics, type ServerMetrics } from './metrics.ts';

export interface ServerOptions extends AppOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Run an in-process worker, or not (`--no-worker`). */
  worker: { concurrency: number; pollIntervalMs: number; drainTimeoutMs: number } | null;
  /** Default process metrics (CPU, memory, event loop) in /metrics. */
  processMetrics?: boolean;
}

export interface RunningServer {
  /** `http://host:port`, with the port actually bound. */
  url: string;
  app: FastifyInstance;
  metrics: ServerMetrics;
  worker: Worker | null;
  reaper: Reaper;
  /** Stops accepting, ends event streams, stops restores, drains the worker, stops the reaper. Idempotent. */
  close(reason?: string): Promise<void>;
}

/**
 * Whether a listen address is reachable from this machine only: 127.0.0.0/8, ::1, localhost.
 * Anything else, the wildcard addresses 0.0.0.0 and :: first, faces the network.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare) || /^::ffff:127(\.\d{1,3}){3}$/.test(bare);
}

/**
 * The long-running server: the API, the reaper (whose actions feed /metrics) and, unless
 * disabled, a worker. The pool belongs to the caller, who closes it after `close()`.
 */
export async function startServer(deps: { pool: Pool; config: Config; log: Logger }, options: ServerOptions): Promise<RunningServer> {
  const metrics = createServerMetrics(deps.pool, { processMetrics: options.processMetrics });
  const app = await buildApp({ ...deps, metrics }, { ...options, metricsNeedToken: options.metricsNeedToken ?? !isLoopbackHost(options.host) });
  const reaper = startReaper(deps.pool, deps.config.reaperIntervalMs, deps.log.child({ component: 'reaper' }), (runs) => metrics.recordReaped(runs));
  let worker: Worker | null = null;
  // The control loops. Each is safe with several servers on one catalog: the scheduler's
  // slots are unique keys, the notifier and dispatcher claim rows, the pruner is idempotent.
  const scheduler = startScheduler({ db: deps.pool, config: deps.config, log: deps.log }, { onScheduled: () => metrics.schedulerActions.inc({ action: 'enqueued' }) });
  const notifier = startNotifier({ db: deps.pool, log: deps.log }, { publicUrl: deps.config.alarms.publicUrl });
  const pruner = startPruner({ db: deps.pool, log: deps.log }, { intervalMs: 3_600_000 });
  const alarms = startAlarmEvaluator({ pool: deps.pool, log: deps.log }, deps.config.alarms);
  // Continuous targets are streamed (and their slots guarded) by the server itself, worker or not.
  const streams = startStreamSupervisor(deps, { owner: `server:${workerName()}`, limit: deps.config.continuousStreams, pollIntervalMs: 1000 });
  const github = deps.config.github
    ? startGithubExecutor({
        db: deps.pool,
        client: githubClient(deps.config.github),
        log: deps.log.child({ component: 'github' }),
        startDeadlineMs: deps.config.startDeadlineMs,
        intervalMs: 5000,
      })
    : null;
  let closing: Promise<void> | null = null;
  const close = (reason = 'server shutting down') =>
    (closing ??= (async () => {
      try {
        await app.close();
      } finally {
        await worker?.stop(reason);
        await Promise.all([github?.stop(), streams.stop(), scheduler.stop(), notifier.stop(), pruner.stop(), alarms.stop(), reaper.stop()]);
      }
    })());

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await close('server could not start');
    const code = (error as NodeJS.ErrnoException).code;
    // Not the catalog's name: the listen address's (getaddrinfo), which the operator chose.
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      throw new BackstopError('INVALID_INPUT', `The listen address "${options.host}" does not resolve on this machine (${code}); choose another --host (127.0.0.1, 0.0.0.0).`, {
        cause: error,
      });
    }
    throw error;
  }
  // Only now, with the app compiled and listening: start-up work blocks this thread, and a run
  // claimed before it would sit with no heartbeat thread yet. The worker would start a reaper
  // of its own, whose actions /metrics would not see; this process already runs one.
  worker = options.worker
    ? startWorker({ db: deps.pool, config: deps.config, log: deps.log }, { ...options.worker, reap: false, evaluateAlarms: false, stream: false, deliver: false })
    : null;
  if (bundledFiles) deps.log.warn('the single executable serves the API without the dashboard: install the npm package for it');
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return { url: `http://${host}:${port}`, app, metrics, worker, reaper, close };
}
