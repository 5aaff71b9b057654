// @ts-check
import { isTerminal } from './components.js';
import { formatBytes, formatDuration, formatRate } from './format.js';
import { html } from './html.js';

/**
 * Live progress of a run's backup, its restore drill, or a restore of its backup, as the API
 * gives it (run.progress, and `progress` events of the event streams): figures decided on the
 * server, shown here as they are. Pure functions and one component.
 */

/** @typedef {import('./types').Progress} Progress */
/** @typedef {import('./types').Run} Run */

/** @type {Record<string, string>} */
const phaseWords = {
  connecting: 'Connecting to the database',
  dumping: 'Dumping',
  manifest: 'Writing the manifest',
  verifying: 'Checking the stored file',
  restoring: 'Restoring',
  checking: 'Checking rows',
  replaying: 'Replaying',
  done: 'Finishing',
};

/** @type {Record<string, string>} */
const operationWords = { backup: 'Backup', restore: 'Restore', drill: 'Restore drill' };

/**
 * Whether the progress is of work under way: the run's own while it is active, a restore's while one shows.
 * @template {{ status: string, progress: Progress | null }} R
 * @param {R | null | undefined} run
 * @returns {run is R & { progress: Progress }}
 */
export function isLiveProgress(run) {
  return Boolean(run?.progress) && (!isTerminal(run?.status) || run?.progress?.operation === 'restore');
}

/**
 * "~250 MiB (the previous backup)" — what the total rests on, said in words.
 * @param {Progress} progress
 */
function totalText(progress) {
  if (progress.totalBytes === null || progress.totalBytes === undefined) return '';
  if (progress.totalBasis === 'previous-backup') return ` of about ${formatBytes(progress.totalBytes)} (the size of the previous backup)`;
  if (progress.totalBasis === 'database-size') return ` of about ${formatBytes(progress.totalBytes)} (the database's size on disk)`;
  return ` of ${formatBytes(progress.totalBytes)}`;
}

/** @param {number} count */
function formatCount(count) {
  return count.toLocaleString('en-US');
}

/**
 * A replay's count, which is of transactions, not bytes: "12,000 of 247,575 transactions"; '' for other work.
 * @param {Progress} progress
 */
function replayText(progress) {
  if (progress.transactionsDone === undefined || progress.transactionsTotal === undefined) return '';
  return `${formatCount(progress.transactionsDone)} of ${formatCount(progress.transactionsTotal)} transactions`;
}

/**
 * One sentence: "Dumping 120 MiB of about 250 MiB …, 30 MiB stored, 24 MiB/s, about 6 s left".
 * @param {Progress} progress
 */
export function progressSentence(progress) {
  const replay = replayText(progress);
  if (replay) {
    const rate = progress.rateTransactionsPerSecond ? `, ${formatCount(progress.rateTransactionsPerSecond)} transactions/s` : '';
    const eta = progress.etaSeconds ? `, about ${formatDuration(progress.etaSeconds)} left` : '';
    return `${phaseWords[progress.phase] ?? progress.phase}: ${replay}${rate}${eta}`;
  }
  const stored = progress.bytesStored ? `, ${formatBytes(progress.bytesStored)} ${progress.operation === 'backup' ? 'stored' : 'read from the store'}` : '';
  const rate = progress.rateBytesPerSecond !== null && progress.rateBytesPerSecond !== undefined ? `, ${formatBytes(progress.rateBytesPerSecond)}/s` : '';
  const eta = progress.etaSeconds ? `, about ${formatDuration(progress.etaSeconds)} left` : '';
  return `${phaseWords[progress.phase] ?? progress.phase}: ${formatBytes(progress.bytesDone)}${totalText(progress)}${stored}${rate}${eta}`;
}

/**
 * A short form for tables and cards: "48 % · 24 MiB/s · 6 s left", or the bytes (a replay: the transactions) when there is no total.
 * @param {Progress} progress
 */
export function progressBrief(progress) {
  const replay = replayText(progress);
  const parts = [progress.percent !== null && progress.percent !== undefined ? `${progress.percent} %` : replay || formatBytes(progress.bytesDone)];
  if (progress.rateBytesPerSecond) parts.push(formatRate(progress.rateBytesPerSecond));
  if (progress.rateTransactionsPerSecond) parts.push(`${formatCount(progress.rateTransactionsPerSecond)} transactions/s`);
  if (progress.etaSeconds) parts.push(`${formatDuration(progress.etaSeconds)} left`);
  return parts.join(' · ');
}

/**
 * The stored size of a run's backup (files and manifest), or null.
 * @param {Pick<Run, 'artifact'>} run
 */
export function runSizeBytes(run) {
  if (!run.artifact) return null;
  return run.artifact.files.reduce((sum, file) => sum + file.size, run.artifact.manifest.size);
}

/**
 * How long a run took, or has been running, in seconds. For a running run the runner's own
 * count (`progress.elapsedMs`, by its monotonic clock) is preferred when it is the larger:
 * this browser's clock and the catalog's may disagree, and a duration is never negative.
 * @param {Pick<Run, 'startedAt' | 'finishedAt' | 'progress'>} run
 */
export function runDurationSeconds(run, now = Date.now()) {
  if (!run.startedAt) return null;
  if (run.finishedAt) return Math.max(0, (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000);
  const byClock = (now - Date.parse(run.startedAt)) / 1000;
  const byRunner = run.progress && run.progress.operation !== 'restore' ? run.progress.elapsedMs / 1000 : 0;
  return Math.max(0, byClock, byRunner);
}

/**
 * A progress bar with its figures. `compact` (tables, cards): the bar and a brief line; in
 * full (the run page): what is under way, a sentence with every figure, and how old it is.
 * @param {{ progress: Progress | null | undefined, compact?: boolean, id?: string }} props
 */
export function ProgressBar({ progress, compact = false, id }) {
  if (!progress) return null;
  const value = progress.percent === null || progress.percent === undefined ? undefined : progress.percent / 100;
  const label = `${operationWords[progress.operation] ?? 'Work'}: ${progressSentence(progress)}`;
  const bar = html`<progress id=${id} class="progress-bar" max="1" value=${value} aria-label=${label}
    data-bytes=${progress.bytesDone} data-transactions=${progress.transactionsDone} data-phase=${progress.phase} data-operation=${progress.operation}></progress>`;
  if (compact) {
    return html`<div class="progress-compact" title=${label}>${bar}<span class="progress-brief">${progressBrief(progress)}</span></div>`;
  }
  return html`<div class="progress-full">
    ${bar}
    <p class="progress-text" id=${id ? `${id}-text` : undefined}>${progressSentence(progress)}</p>
    <p class="muted progress-meta">${operationWords[progress.operation] ?? 'Work'} running for ${formatDuration(progress.elapsedMs / 1000)}${progress.percent !== null && progress.percent !== undefined ? `, ${progress.percent} % done` : ''}.</p>
  </div>`;
}
