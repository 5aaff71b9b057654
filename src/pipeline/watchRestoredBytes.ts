import { processReadBytes } from '../pgtools/processReadBytes.ts';

/** How often a running pg_restore or psql is asked how far it read. */
export const RESTORE_WATCH_MS = 500;

/**
 * Reports how far `pid` read, every RESTORE_WATCH_MS until the returned stop is called:
 * the highest figure so far, at most `total`.
 */
export function watchRestoredBytes(pid: number | undefined, total: number, onBytes: (bytes: number) => void): () => void {
  if (pid === undefined) return () => {};
  let highest = 0;
  let stopped = false;
  const timer = setInterval(() => {
    void processReadBytes(pid).then((bytes) => {
      if (stopped || bytes === null) return;
      highest = Math.min(total, Math.max(highest, bytes));
      onBytes(highest);
    });
  }, RESTORE_WATCH_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
