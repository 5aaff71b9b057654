import type { Logger } from 'pino';

export interface BackgroundTasks {
  /** Starts `work` now; it gets a signal that aborts when the server shuts down. */
  start(name: string, work: (signal: AbortSignal) => Promise<void>): void;
  running(): number;
  /** Aborts every task and waits for all of them to settle. */
  stop(): Promise<void>;
}

/**
 * Work a request starts and does not wait for (a restore). Tracked so that shutdown stops it
 * (a restore aborts its pg_restore) instead of leaving it running against a closed pool.
 */
export function createBackgroundTasks(log: Logger): BackgroundTasks {
  const controller = new AbortController();
  const tasks = new Set<Promise<void>>();
  return {
    start(name, work) {
      if (controller.signal.aborted) throw new Error(`cannot start ${name}: the server is shutting down`);
      const task = work(controller.signal)
        .catch((error) => log.error({ err: error, task: name }, 'background task failed'))
        .finally(() => tasks.delete(task));
      tasks.add(task);
    },
    running: () => tasks.size,
    async stop() {
      controller.abort(new Error('server shutting down'));
      await Promise.all([...tasks]);
    },
  };
}
