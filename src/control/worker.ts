import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { isBackstopError } from '../core/errors.ts';
import type { Pool, Queryable } from '../db/pool.ts';
import { claimNextRun } from '../db/runLeases.ts';
import type { RunRecord } from '../db/runRecords.ts';
import { executeRun, type RunExecution } from '../runner/executeRun.ts';
import { startAlarmEvaluator } from './alarmEvaluator.ts';
import { startCatalogWatch } from './catalogWatch.ts';
import { startNotifier } from './notifier.ts';
import { startReaper } from './reaper.ts';
import { startStreamSupervisor } from './streamSupervisor.ts';

export interface WorkerOptions {
  concurrency: number;
  pollIntervalMs: number;
  /** On shutdown, how long in-flight runs may take to finish before they are handed back. */
  drainTimeoutMs: number;
  name?: string;
  onRunFinished?: (run: RunRecord | null) => void;
  /** Reap expired runs while the worker lives (default true); false when the process runs its own reaper. */
  reap?: boolean;
  /** Evaluate alarms while the worker lives (default true); false when the process runs its own evaluator. */
  evaluateAlarms?: boolean;
  /** Stream continuous targets and guard their slots (default true); false when the process runs its own. */
  stream?: boolean;
  /** Deliver the notification outbox (default true); false when the process runs its own notifier. */
  deliver?: boolean;
}

export interface Worker {
  name: string;
  /** Stops claiming; lets in-flight runs finish for the drain timeout, then hands the rest back. */
  stop(reason?: string): Promise<void>;
  /** Resolves once the worker has stopped. */
  done: Promise<void>;
  inFlight(): number;
}

export function workerName(): string {
  return `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/** Claims and executes queued runs, up to `concurrency` at once, and (unless told not to) reaps while it lives. */
export function startWorker(deps: { db: Queryable | Pool; config: Config; log: Logger }, options: WorkerOptions): Worker {
  const name = options.name ?? workerName();
  const log = deps.log.child({ worker: name });
  const executions = new Map<string, RunExecution>();
  const reaper = options.reap === false ? null : startReaper(deps.db, deps.config.reaperIntervalMs, log);
  // Alarms are evaluated wherever Backstop runs, so that whichever process comes back first after
  // an outage notices the slots missed meanwhile. Evaluation takes a transaction: a pool only.
  const alarms = options.evaluateAlarms !== false && 'connect' in deps.db ? startAlarmEvaluator({ pool: deps.db, log }, deps.config.alarms) : null;
  const catalogWatch = startCatalogWatch({ db: deps.db, log, workerName: name }, deps.config.alarms);
  // The alarms a worker raises (a slot dropped, a backup overdue) and the runs it ends reach
  // their channels without a server: notifiers claim outbox rows, each row to one of them.
  const notifier = options.deliver === false ? null : startNotifier({ db: deps.db, log }, { publicUrl: deps.config.alarms.publicUrl });
  // Continuous targets' streamers hold leases of their own, apart from the runs' concurrency.
  const streams =
    options.stream !== false && 'connect' in deps.db
      ? startStreamSupervisor({ pool: deps.db, log, config: deps.config }, { owner: name, limit: deps.config.continuousStreams, pollIntervalMs: options.pollIntervalMs })
      : null;
  let stopping = false;
  let wake: (() => void) | null = null;
  let pollTimer: NodeJS.Timeout | undefined;

  const sleepUntilWoken = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      pollTimer = setTimeout(resolve, ms);
    }).finally(() => {
      wake = null;
      clearTimeout(pollTimer);
    });

  const loop = async () => {
    while (!stopping) {
      if (executions.size >= options.concurrency) {
        await sleepUntilWoken(options.pollIntervalMs);
        continue;
      }
      let run;
      try {
        run = await claimNextRun(deps.db, { leaseTtlMs: deps.config.leaseTtlMs, claimedBy: name, globalLimit: deps.config.maxRunning });
      } catch (error) {
        log.warn({ err: error }, 'claim failed; retrying');
        await sleepUntilWoken(options.pollIntervalMs);
        continue;
      }
      if (!run) {
        await sleepUntilWoken(options.pollIntervalMs);
        continue;
      }
      if (stopping) {
        // Claimed in the same instant as shutdown: hand it straight back.
        executions.set(run.id, executeRun(deps, run));
        executions.get(run.id)!.stop({ kind: 'release', reason: `worker ${name} is shutting down` });
      } else {
        log.info({ runId: run.id, target: run.targetName, attempt: run.attempt }, 'claimed run');
        executions.set(run.id, executeRun(deps, run));
      }
      const execution = executions.get(run.id)!;
      const runId = run.id;
      execution.result
        .then((finished) => options.onRunFinished?.(finished))
        .catch((error) => {
          if (isBackstopError(error, 'LEASE_LOST')) log.warn({ runId, err: error }, 'run lost its lease');
          else log.error({ runId, err: error }, 'run ended without a recorded outcome');
          options.onRunFinished?.(null);
        })
        .finally(() => {
          executions.delete(runId);
          wake?.();
        });
    }
  };
  const looping = loop();

  let stopped: Promise<void> | null = null;
  let markDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (markDone = resolve));
  const stop = (reason = 'shutting down') => {
    stopped ??= (async () => {
      stopping = true;
      wake?.();
      const streamsStopped = streams?.stop();
      await looping;
      const pending = [...executions.values()].map((execution) => execution.result.catch(() => null));
      if (pending.length > 0) {
        log.info({ inFlight: pending.length, drainTimeoutMs: options.drainTimeoutMs }, 'waiting for in-flight runs');
        let drainTimer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([
          Promise.all(pending).then(() => true),
          new Promise<boolean>((resolve) => (drainTimer = setTimeout(() => resolve(false), options.drainTimeoutMs))),
        ]);
        clearTimeout(drainTimer);
        if (!drained) {
          for (const execution of executions.values()) execution.stop({ kind: 'release', reason: `worker ${name}: ${reason}` });
          await Promise.all(pending);
        }
      }
      void reaper?.stop();
      await Promise.all([alarms?.stop(), catalogWatch.stop(), notifier?.stop(), streamsStopped]);
      markDone();
    })();
    return stopped;
  };

  return {
    name,
    stop,
    done,
    inFlight: () => executions.size,
  };
}
