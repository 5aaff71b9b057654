import type { BackupProgress } from '../pipeline/backup.ts';
import { formatBytes } from './output.ts';

/**
 * Progress on stderr: a redrawn line on a terminal, a plain line every `plainEveryMs`
 * otherwise, nothing at all when disabled (with --json).
 */
export function createProgressReporter(enabled: boolean, plainEveryMs = 10_000) {
  const tty = process.stderr.isTTY === true;
  let lastPlain = 0;
  let drawn = false;
  const describe = (progress: BackupProgress) =>
    `${progress.phase}: ${formatBytes(progress.bytesDumped)} read, ${formatBytes(progress.bytesStored)} stored, ${formatBytes(progress.rateBytesPerSecond)}/s`;
  return {
    update(progress: BackupProgress) {
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
    },
  };
}
