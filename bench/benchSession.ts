import { refuseNewChildren, stopRunningChildren } from './timedProcess.ts';

/**
 * What a long bench process needs around its work: a log stamped with the time since it
 * started, clean-ups that run in reverse order, once, on success, failure or interrupt, and a
 * Ctrl-C (or SIGTERM) that stops the cases in flight and cleans up.
 */
export function benchSession() {
  const started = performance.now();
  const log = (message: string): void => {
    const elapsed = Math.round((performance.now() - started) / 1000);
    process.stderr.write(`[${String(Math.floor(elapsed / 60)).padStart(2, '0')}:${String(elapsed % 60).padStart(2, '0')}] ${message}\n`);
  };
  const cleanups: Array<{ name: string; run: () => Promise<unknown> }> = [];
  let cleaning: Promise<void> | undefined;
  const cleanUp = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup.run();
        } catch (error) {
          log(`cleanup "${cleanup.name}" failed: ${(error as Error).message}`);
        }
      }
    })();
    return cleaning;
  };
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      log(`${signal}: stopping and cleaning up`);
      refuseNewChildren();
      void stopRunningChildren()
        .then(cleanUp)
        .finally(() => process.exit(130));
    });
  }
  /** Runs the bench, then stops what still runs and cleans up, whatever happened. */
  const run = async (main: () => Promise<void>): Promise<void> => {
    try {
      await main();
    } catch (error) {
      // After an interrupt the case in flight fails because it was stopped: that is not news.
      if (!interrupted) log(`failed: ${(error as Error).stack ?? error}`);
      process.exitCode = interrupted ? 130 : 1;
    } finally {
      await stopRunningChildren();
      await cleanUp();
      log(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }
  };
  return { started, log, cleanups, run };
}
