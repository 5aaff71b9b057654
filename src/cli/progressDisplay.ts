import cliProgress from 'cli-progress';
import type { ReportedProgress } from '../core/runProgress.ts';
import { formatBytes } from '../core/formatBytes.ts';
import { formatDuration } from './output.ts';

export interface ProgressDisplay {
  update(progress: ReportedProgress): void;
  /** Removes the bar (a terminal keeps only the command's result); idempotent. */
  done(): void;
}

const phaseWords: Record<ReportedProgress['phase'], string> = {
  connecting: 'connecting',
  dumping: 'dumping',
  manifest: 'writing the manifest',
  verifying: 'checking the stored file',
  restoring: 'restoring',
  checking: 'checking rows',
  replaying: 'replaying',
  done: 'done',
};

/**
 * One line of progress in words: "dumping 120.0 MiB of ~250.0 MiB (48%), stored 31.2 MiB, 24.1 MiB/s, about 5.4 s left";
 * a replay counts transactions: "replaying 12,000 of 247,575 transactions (4%), 4,012 transactions/s, about 59 s left".
 */
export function describeProgress(progress: ReportedProgress): string {
  const percent = progress.percent !== null ? ` (${progress.percent}%)` : '';
  const eta = progress.etaSeconds !== null && progress.etaSeconds > 0 ? `, about ${formatDuration(progress.etaSeconds * 1000)} left` : '';
  if (progress.transactionsDone !== undefined && progress.transactionsTotal !== undefined) {
    const rate =
      progress.rateTransactionsPerSecond !== null && progress.rateTransactionsPerSecond !== undefined ? `, ${formatCount(progress.rateTransactionsPerSecond)} transactions/s` : '';
    return `${phaseWords[progress.phase]} ${formatCount(progress.transactionsDone)} of ${formatCount(progress.transactionsTotal)} transactions${percent}${rate}${eta}`;
  }
  const estimated = progress.totalBasis === 'previous-backup' || progress.totalBasis === 'database-size' ? '~' : '';
  const of = progress.totalBytes !== null ? ` of ${estimated}${formatBytes(progress.totalBytes)}` : '';
  const stored = progress.bytesStored > 0 ? `, ${progress.operation === 'backup' ? 'stored' : 'read'} ${formatBytes(progress.bytesStored)}` : '';
  const rate = progress.rateBytesPerSecond !== null ? `, ${formatBytes(progress.rateBytesPerSecond)}/s` : '';
  return `${phaseWords[progress.phase]} ${formatBytes(progress.bytesDone)}${of}${percent}${stored}${rate}${eta}`;
}

/** A count as people read it: 247,575. */
function formatCount(count: number): string {
  return count.toLocaleString('en-US');
}

/**
 * Progress on stderr. On a terminal, a bar redrawn in place (cli-progress); otherwise (a
 * pipe, a CI log) a plain line at each new phase and every `plainEveryMs`, never a control
 * character. Nothing at all when disabled (with --json).
 */
export function createProgressDisplay(enabled: boolean, options: { stream?: NodeJS.WriteStream; plainEveryMs?: number } = {}): ProgressDisplay {
  const stream = options.stream ?? process.stderr;
  const plainEveryMs = options.plainEveryMs ?? 10_000;
  if (!enabled) return { update() {}, done() {} };
  if (stream.isTTY !== true) {
    let lastPhase = '';
    let lastAt = performance.now();
    return {
      update(progress) {
        const now = performance.now();
        // Each phase once as it starts (connecting and done say nothing the result does not), then every plainEveryMs.
        const newPhase = progress.phase !== lastPhase && progress.phase !== 'connecting' && progress.phase !== 'done';
        if (!newPhase && now - lastAt < plainEveryMs) return;
        lastPhase = progress.phase;
        lastAt = now;
        stream.write(`${describeProgress(progress)}\n`);
      },
      done() {},
    };
  }
  const bar = new cliProgress.SingleBar({
    stream,
    format: '{bar} {percent} {text}',
    barsize: 24,
    barCompleteChar: '█',
    barIncompleteChar: '░',
    hideCursor: true,
    clearOnComplete: true,
    // Redraws at most this often; the figures change about once a second.
    fps: 5,
  });
  let started = false;
  const payload = (progress: ReportedProgress) => ({
    percent: progress.percent === null ? '  ?%' : `${String(progress.percent).padStart(3)}%`,
    text: describeProgress(progress),
  });
  return {
    update(progress) {
      if (!started) {
        started = true;
        bar.start(100, progress.percent ?? 0, payload(progress));
      } else bar.update(progress.percent ?? 0, payload(progress));
    },
    done() {
      if (!started) return;
      started = false;
      bar.stop();
    },
  };
}
