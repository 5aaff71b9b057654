export interface PeriodicTask<T> {
  /** Runs the task now; joins the pass already under way instead of starting a second one. */
  runOnce(): Promise<T>;
  stop(): void;
}

/**
 * A task run every `intervalMs`, one pass at a time: the next pass is timed from the end of
 * the previous one, so a slow pass never piles up behind itself. The task handles its own
 * errors (a failed pass is logged by it and retried next time).
 */
export function startPeriodicTask<T>(intervalMs: number, task: () => Promise<T>): PeriodicTask<T> {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<T> | null = null;

  const runOnce = (): Promise<T> =>
    (running ??= task().finally(() => {
      running = null;
    }));

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(async () => {
      await runOnce().catch(() => {});
      schedule();
    }, intervalMs);
  };
  schedule();

  return {
    runOnce,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
