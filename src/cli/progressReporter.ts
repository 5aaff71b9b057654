import { formatBytes } from '../core/formatBytes.ts';

/** What any long operation reports: a phase, bytes done (of a total when known), time. */
export interface ProgressSnapshot {
  phase: string;
  done: number;
  total?: number;
  elapsedMs: number;
}

/**
 * Progress on stderr: a redrawn line on a terminal, a plain line every `plainEveryMs`
 * otherwise, nothing at all when disabled (with --json).
 */
export function createProgressReporter(enabled: boolean, plainEveryMs = 10_000) {
  const tty = process.stderr.isTTY === true;
  let lastPlain = 0;
  let drawn = false;
  const describe = (progress: ProgressSnapshot) => {
    const rate = progress.elapsedMs > 0 ? (progress.done * 1000) / progress.elapsedMs : 0;
    const share = progress.total ? ` of ${formatBytes(progress.total)} (${Math.floor((100 * progress.done) / Math.max(progress.total, 1))}%)` : '';
    return `${progress.phase}: ${formatBytes(progress.done)}${share}, ${formatBytes(rate)}/s`;
  };
  return {
    update(progress: ProgressSnapshot) {
      if (!enabled) return;
      if (tty) {
        process.stderr.write(`\r\x1b[2K${describe(progress)}`);
        drawn = true;
      } else if (progress.elapsedMs - lastPlain >= plainEveryMs) {
        lastPlain = progress.elapsedMs;
        process.stderr.write(`${describe(progress)}\n`);
      }
    },
    done() {
      if (drawn) process.stderr.write('\r\x1b[2K');
      drawn = false;
    },
  };
}
