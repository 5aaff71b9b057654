import { getAsset, isSea } from 'node:sea';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import pg from 'pg';
import { bundledFiles, EXECUTABLE_SCRIPT_ASSET } from '../core/bundledFiles.ts';
import { PROGRESS_REPORT_MS, type ReportedProgress } from '../core/runProgress.ts';
import { catalogTypes } from '../db/pool.ts';
import { renewLease, type LeaseState } from '../db/runLeases.ts';
import { reportRunProgress } from '../db/runProgress.ts';
import { startHeartbeat, type Heartbeat, type HeartbeatOptions } from './heartbeat.ts';
import { renewLeaseOverHttp, reportProgressOverHttp } from './runnerApi.ts';
import type { HeartbeatChannel } from './runnerCatalog.ts';

/**
 * The heartbeat in a worker thread, with its own catalog connection (or, for a remote runner,
 * its own HTTP requests to the API): CPU-heavy or blocking work on the main thread
 * (compression, encryption, a server compiling its schemas) cannot starve it, so a busy runner
 * is never mistaken for a dead one.
 *
 * A thread takes a moment to start (loading modules, connecting), longer than a short lease
 * under load: until it has renewed once, the ordinary heartbeat on this thread covers the
 * lease, then hands over.
 *
 * A runner whose main thread is truly stuck must still lose its run: the main thread ticks a
 * liveness counter, and the thread stops renewing once the main thread has been silent for
 * `stallLimitMs`; the lease then expires and the reaper ends the run.
 */

interface ThreadData {
  kind: 'backstop-heartbeat';
  channel: HeartbeatChannel;
  runId: string;
  leaseId: string;
  leaseTtlMs: number;
  intervalMs: number;
  progressIntervalMs: number;
  stallLimitMs: number;
  liveness: SharedArrayBuffer;
  logLevel: string;
}

type ToMain =
  | { type: 'renewed'; at: number }
  | { type: 'cancel' }
  | { type: 'lost'; reason: string }
  | { type: 'log'; level: 'warn' | 'error'; message: string; error?: string }
  | { type: 'stopped' };
type ToThread = { type: 'progress'; progress: ReportedProgress | null } | { type: 'stop' };

/** Absolute milliseconds on the monotonic clock, comparable across threads. */
const absoluteNow = () => performance.timeOrigin + performance.now();

export function startThreadedHeartbeat(options: HeartbeatOptions & { channel: HeartbeatChannel; stallLimitMs?: number }): Heartbeat {
  const liveness = new SharedArrayBuffer(4);
  const counter = new Int32Array(liveness);
  let lastRenewed = performance.now() - 50;
  let stopped = false;
  const data: ThreadData = {
    kind: 'backstop-heartbeat',
    channel: options.channel,
    runId: options.runId,
    leaseId: options.leaseId,
    leaseTtlMs: options.leaseTtlMs,
    intervalMs: options.intervalMs,
    progressIntervalMs: options.progressIntervalMs ?? PROGRESS_REPORT_MS,
    stallLimitMs: options.stallLimitMs ?? Math.max(5 * options.leaseTtlMs, 60_000),
    liveness,
    logLevel: options.log.level,
  };
  let handedOver = false;
  const local = startHeartbeat({
    ...options,
    onLeaseLost: (reason) => {
      if (stopped || handedOver) return;
      stopped = true;
      options.onLeaseLost(reason);
    },
    onCancelRequested: () => {
      if (!handedOver) options.onCancelRequested();
    },
  });
  const thread = bundledFiles ? bundledThread(data) : new Worker(new URL(import.meta.url), { workerData: data });
  // The thread must not keep a finished process alive, nor outlive `stop()` by much.
  thread.unref();
  thread.on('message', (message: ToMain) => {
    if (stopped && message.type !== 'stopped') return;
    switch (message.type) {
      case 'renewed':
        lastRenewed = Math.max(lastRenewed, message.at - performance.timeOrigin);
        if (!handedOver) {
          handedOver = true;
          local.stop();
        }
        break;
      case 'cancel':
        options.onCancelRequested();
        break;
      case 'lost':
        stopped = true;
        options.onLeaseLost(message.reason);
        break;
      case 'log':
        options.log[message.level]({ runId: options.runId, err: message.error }, message.message);
        break;
    }
  });
  thread.on('error', (error) => {
    options.log.error({ err: error, runId: options.runId }, 'heartbeat thread failed');
    if (!stopped) {
      stopped = true;
      options.onLeaseLost(`the heartbeat thread failed: ${error.message}`);
    }
  });
  // Liveness and progress from the main thread. If this timer stops firing, the main thread is stuck.
  // Twice per progress report, so what the thread writes is at most half an interval old.
  const alive = setInterval(
    () => {
      Atomics.add(counter, 0, 1);
      thread.postMessage({ type: 'progress', progress: options.progress() } satisfies ToThread);
    },
    Math.max(50, Math.min(options.intervalMs, data.progressIntervalMs / 2)),
  );
  alive.unref();

  return {
    leaseValidUntil: () => Math.max(lastRenewed + options.leaseTtlMs, handedOver ? 0 : local.leaseValidUntil()),
    stop() {
      if (!stopped) stopped = true;
      local.stop();
      clearInterval(alive);
      thread.postMessage({ type: 'stop' } satisfies ToThread);
      // Give the thread a moment to close its connection; never wait for it.
      setTimeout(() => void thread.terminate(), 2000).unref();
    },
  };
}

/**
 * A bundle has no module file of its own for the thread: the thread runs the whole bundle,
 * whose copy of this module starts the heartbeat on load (the bottom of this file) while its
 * entry point stays idle off the main thread. The GitHub Action's bundle is a file; the single
 * executable's script is not, so the executable carries it again as an asset to evaluate.
 */
function bundledThread(data: ThreadData): Worker {
  if (isSea()) return new Worker(getAsset(EXECUTABLE_SCRIPT_ASSET, 'utf8'), { eval: true, workerData: data });
  return new Worker(__filename, { workerData: data });
}

interface ThreadRenewal {
  renew: (input: { runId: string; leaseId: string; leaseTtlMs: number; progress?: Record<string, unknown> | null }) => Promise<LeaseState | null>;
  report: (input: { runId: string; leaseId: string; progress: ReportedProgress }) => Promise<boolean>;
  /** After a failure: forget the connection, if any; the next renewal makes a new one. */
  drop: () => Promise<void>;
}

function sqlRenewal(connectionString: string, runId: string): ThreadRenewal {
  // A pg.Client cannot reconnect: a broken one is dropped and the next tick opens another.
  let client: Promise<pg.Client> | null = null;
  const connection = () =>
    (client ??= (async () => {
      const fresh = new pg.Client({ connectionString, application_name: `backstop-heartbeat:${runId}`, connectionTimeoutMillis: 10_000, types: catalogTypes });
      fresh.on('error', () => {});
      try {
        await fresh.connect();
        return fresh;
      } catch (error) {
        await fresh.end().catch(() => {});
        throw error;
      }
    })());
  return {
    renew: async (input) => renewLease(await connection(), input),
    report: async (input) => reportRunProgress(await connection(), input),
    drop: async () => {
      const previous = client;
      client = null;
      await (await previous?.catch(() => null))?.end().catch(() => {});
    },
  };
}

function runThread(data: ThreadData, port: NonNullable<typeof parentPort>): void {
  const send = (message: ToMain) => port.postMessage(message);
  const channel = data.channel;
  const { renew, report, drop }: ThreadRenewal =
    channel.kind === 'sql'
      ? sqlRenewal(channel.connectionString, data.runId)
      : {
          renew: (input) => renewLeaseOverHttp(channel, input),
          // Without the route, progress rides on the renewals only.
          report: async (input) => !channel.progressRoute || reportProgressOverHttp(channel, input),
          drop: async () => {},
        };
  const counter = new Int32Array(data.liveness);
  let seen = Atomics.load(counter, 0);
  let seenAt = performance.now();
  let progress: ReportedProgress | null = null;

  const heartbeat = startHeartbeat({
    runId: data.runId,
    leaseId: data.leaseId,
    leaseTtlMs: data.leaseTtlMs,
    intervalMs: data.intervalMs,
    progressIntervalMs: data.progressIntervalMs,
    log: pino({ level: 'silent' }),
    progress: () => progress,
    reportProgress: report,
    renewLease: async (input) => {
      const now = Atomics.load(counter, 0);
      if (now !== seen) {
        seen = now;
        seenAt = performance.now();
      } else if (performance.now() - seenAt > data.stallLimitMs) {
        // Refusing to renew for a stuck main thread: let the lease lapse.
        return null;
      }
      try {
        const state = await renew(input);
        if (state) send({ type: 'renewed', at: absoluteNow() });
        return state;
      } catch (error) {
        await drop();
        send({ type: 'log', level: 'warn', message: 'heartbeat failed; retrying', error: (error as Error).message });
        throw error;
      }
    },
    onLeaseLost: (reason) =>
      send({ type: 'lost', reason: performance.now() - seenAt > data.stallLimitMs ? `the runner's main thread made no progress for ${data.stallLimitMs} ms` : reason }),
    onCancelRequested: () => send({ type: 'cancel' }),
  });

  port.on('message', (message: ToThread) => {
    if (message.type === 'progress') progress = message.progress;
    if (message.type === 'stop') {
      heartbeat.stop();
      void drop().finally(() => {
        send({ type: 'stopped' });
        port.close();
      });
    }
  });
}

if (!isMainThread && parentPort && (workerData as ThreadData | null)?.kind === 'backstop-heartbeat') {
  runThread(workerData as ThreadData, parentPort);
}
