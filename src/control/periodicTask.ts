export interface PeriodicTask<T> {
  /** Runs the task now; joins the pass already under way instead of starting a second one. */
  runOnce(): Promise<T>;
  /** No further passes; resolves once the pass under way (if any) has ended. */
  stop(): Promise<void>;
}

export interface PeriodicTaskOptions<T> {
  /** Delay before the first pass (default: `intervalMs`). */
  firstDelayMs?: number;
  /** Delay after a pass, from its result (default: `intervalMs`); e.g. 0 when more work is waiting. */
  nextDelayMs?: (result: T) => number;
}

/**
 * A task run every `intervalMs`, one pass at a time: the next pass is timed from the end of
 * the previous one, so a slow pass never piles up behind itself. The task handles its own
 * errors (a failed pass is logged by it and retried next time); one that throws anyway is
 * retried after `intervalMs`.
 */
export function startPeriodicTask<T>(intervalMs: number, task: () => Promise<T>, options: PeriodicTaskOptions<T> = {}): PeriodicTask<T> {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<T> | null = null;

  const runOnce = (): Promise<T> =>
    (running ??= task().finally(() => {
      running = null;
    }));

  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(async () => {
      let next = intervalMs;
      try {
        const result = await runOnce();
        next = options.nextDelayMs?.(result) ?? intervalMs;
      } catch {
        // The task logs its own failures; try again after the interval.
      }
      schedule(next);
    }, delayMs);
  };
  schedule(options.firstDelayMs ?? intervalMs);

  return {
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}
