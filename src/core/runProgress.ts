import { z } from 'zod';

/**
 * Live progress of work on a run — its backup, its restore drill, or a restore of its backup —
 * as the API, the dashboard and the CLI show it. Decided here, pure, with the clock passed in:
 * how fast the bytes move (over a recent window, so a stall or a speed-up shows within
 * seconds, not diluted by everything since the start), how many there will be, and so the
 * percent and the time left.
 *
 * The figure is always plain bytes (what pg_dump wrote, what pg_restore read), so a backup
 * and a restore of it count the same bytes. A backup cannot know its total in advance: it is
 * estimated from the target's previous succeeded backup, or, for a first backup, from the
 * size of the database on disk (usually more than its dump: indexes are not dumped). A
 * restore knows its total from the manifest.
 *
 * A point-in-time restore then replays the change segments' transactions: that phase counts
 * transactions, not bytes (its bytes stay as the base restore left them), against the exact
 * number to replay, known before the replay starts.
 */

export const progressOperations = ['backup', 'restore', 'drill'] as const;
export type ProgressOperation = (typeof progressOperations)[number];

/**
 * Backups: connecting → dumping → manifest → done. Restores and drills: verifying → restoring →
 * checking → done; a point-in-time restore replays between checking and done.
 */
export const progressPhases = ['connecting', 'dumping', 'manifest', 'verifying', 'restoring', 'checking', 'replaying', 'done'] as const;
export type ProgressPhase = (typeof progressPhases)[number];

/** Phases after the data has all passed: what is left is bookkeeping, so the bar is full. */
const transferredPhases: ReadonlySet<ProgressPhase> = new Set(['manifest', 'checking', 'done']);

export const totalBases = ['previous-backup', 'database-size', 'manifest'] as const;
export type TotalBasis = (typeof totalBases)[number];

/** How far back the rate looks. */
export const RATE_WINDOW_MS = 10_000;
/** A rate over less time than this says more about chunk sizes than about speed. */
const MIN_RATE_SPAN_MS = 500;
/** How often a runner writes changed progress to the catalog (and a restore its own). */
export const PROGRESS_REPORT_MS = 1_000;

const bytes = z.number().finite().nonnegative().max(Number.MAX_SAFE_INTEGER);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/**
 * Progress as a runner reports it (and as the catalog keeps it). Parsed wherever it enters —
 * a runner's heartbeat, finalize or progress report — so the API and the dashboard show only
 * these fields, with these types; `updatedAt` is the catalog's, never the runner's.
 */
export const runProgressSchema = z.object({
  operation: z.enum(progressOperations),
  phase: z.enum(progressPhases),
  bytesDone: bytes.describe('Plain bytes so far: written by pg_dump (backup), read by pg_restore or psql (restore, drill).'),
  bytesStored: bytes.describe('Bytes in the store: written to it (backup), read from it and checked (restore, drill).'),
  bytesDumped: bytes.optional().describe('Backups: the same as bytesDone.'),
  totalBytes: bytes.nullable().describe('The expected bytesDone at the end; null when unknown, or once bytesDone passed an estimate.'),
  totalBasis: z.enum(totalBases).nullable().describe('What totalBytes rests on: the previous succeeded backup, the database size, or the manifest.'),
  percent: z.number().min(0).max(100).nullable().describe('Whole percent of totalBytes (while replaying, of transactionsTotal); 100 once the data has all passed.'),
  rateBytesPerSecond: bytes.nullable().describe(`Plain bytes per second over the last ${RATE_WINDOW_MS / 1000} s; null while replaying (no bytes move).`),
  etaSeconds: bytes.nullable().describe('Seconds left at the current rate, against totalBytes (while replaying, against transactionsTotal).'),
  transactionsDone: count.optional().describe('Point-in-time restores, while replaying: source transactions replayed so far.'),
  transactionsTotal: count.optional().describe('Point-in-time restores, while replaying: the transactions to replay (every one at or before the point).'),
  rateTransactionsPerSecond: count
    .nullable()
    .optional()
    .describe(`Point-in-time restores, while replaying: transactions replayed per second over the last ${RATE_WINDOW_MS / 1000} s.`),
  elapsedMs: bytes.describe('Since the work started, by the clock of the process doing it.'),
});

export type ReportedProgress = z.infer<typeof runProgressSchema>;
export type RunProgress = ReportedProgress & { /** When the catalog recorded it (its clock). */ updatedAt?: string };

/** Reported progress, or null when it is not progress this version understands. */
export function parseRunProgress(value: unknown): ReportedProgress | null {
  const parsed = runProgressSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

const earlierBackupProgress = z.object({
  phase: z.enum(progressPhases),
  bytesDumped: bytes,
  bytesStored: bytes.default(0),
  rateBytesPerSecond: bytes.optional(),
  elapsedMs: bytes.optional(),
});

/**
 * Progress a runner reports with its heartbeat: this version's, or what backup runners sent
 * before progress had an operation (`{phase, bytesDumped, bytesStored, rateBytesPerSecond,
 * elapsedMs}`: a runner pinned to an earlier version still shows its bytes), read as what it
 * was. Null for anything else.
 */
export function parseHeartbeatProgress(value: unknown): ReportedProgress | null {
  const current = parseRunProgress(value);
  if (current) return current;
  const earlier = earlierBackupProgress.safeParse(value);
  if (!earlier.success) return null;
  const transferred = transferredPhases.has(earlier.data.phase);
  return {
    operation: 'backup',
    phase: earlier.data.phase,
    bytesDone: earlier.data.bytesDumped,
    bytesStored: earlier.data.bytesStored,
    bytesDumped: earlier.data.bytesDumped,
    totalBytes: transferred ? earlier.data.bytesDumped : null,
    totalBasis: null,
    percent: transferred ? 100 : null,
    rateBytesPerSecond: earlier.data.rateBytesPerSecond ?? null,
    etaSeconds: transferred ? 0 : null,
    elapsedMs: earlier.data.elapsedMs ?? 0,
  };
}

/** Progress as the catalog returns it (kept in either shape parseHeartbeatProgress reads), with the catalog's time. */
export function readStoredProgress(value: unknown): RunProgress | null {
  const progress = parseHeartbeatProgress(value);
  if (!progress) return null;
  const updatedAt = (value as Record<string, unknown>).updatedAt;
  return typeof updatedAt === 'string' ? { ...progress, updatedAt } : progress;
}

/**
 * Whether progress is of work under way: a run's own while the run is active (queued to
 * cancelling), a restore's whenever the catalog shows one (it stops showing when the
 * restore ends, or soon after its process died).
 */
export function isLiveProgress(progress: RunProgress | null, runIsActive: boolean): boolean {
  return progress !== null && (runIsActive || progress.operation === 'restore');
}

/**
 * What a backup's total is expected to be: the plain size of the target's previous succeeded
 * backup, else the database's size on disk, else unknown.
 */
export function estimateBackupTotal(basis: { previousBackupBytes: number | null; databaseBytes: number | null }): { bytes: number; basis: TotalBasis } | null {
  if (basis.previousBackupBytes !== null && basis.previousBackupBytes > 0) return { bytes: basis.previousBackupBytes, basis: 'previous-backup' };
  if (basis.databaseBytes !== null && basis.databaseBytes > 0) return { bytes: basis.databaseBytes, basis: 'database-size' };
  return null;
}

/** One look at the work: what the pipeline counted so far. */
export interface ProgressReading {
  phase: ProgressPhase;
  bytesDone: number;
  bytesStored: number;
  /** The expected bytesDone at the end, and what that rests on; null when unknown. */
  expected: { bytes: number; basis: TotalBasis } | null;
  /** While replaying: what the phase counts instead of bytes, and how many there are in all. */
  transactions?: { done: number; total: number };
}

export interface ProgressMeter {
  /** The progress to show for `reading`, seen at `atMs` (a monotonic clock, ms). */
  read(reading: ProgressReading, atMs: number): ReportedProgress;
}

/**
 * Turns readings into progress. Keeps the readings of the last `windowMs` for the rate (and
 * the newest one before them, so the window is spanned in full); a count that goes back (a
 * new phase counting anew) starts the window again.
 */
export function createProgressMeter(operation: ProgressOperation, startedAtMs: number, windowMs = RATE_WINDOW_MS): ProgressMeter {
  let samples: Array<{ at: number; count: number }> = [];
  let unit: 'bytes' | 'transactions' = 'bytes';
  return {
    read(reading, atMs) {
      const transactions = reading.transactions;
      const counted = transactions ? transactions.done : reading.bytesDone;
      const last = samples.at(-1);
      // Bytes and transactions never share a rate: a change of unit starts the window again.
      if (last && (counted < last.count || atMs < last.at || unit !== (transactions ? 'transactions' : 'bytes'))) samples = [];
      unit = transactions ? 'transactions' : 'bytes';
      samples.push({ at: atMs, count: counted });
      // Keep one sample at or before the window's start.
      while (samples.length > 2 && samples[1]!.at <= atMs - windowMs) samples.shift();
      const first = samples[0]!;
      const span = atMs - first.at;
      const rate = span >= MIN_RATE_SPAN_MS ? ((counted - first.count) * 1000) / span : null;
      const rounded = rate === null ? null : Math.round(rate);
      return {
        operation,
        phase: reading.phase,
        bytesDone: reading.bytesDone,
        bytesStored: reading.bytesStored,
        ...(operation === 'backup' ? { bytesDumped: reading.bytesDone } : {}),
        ...(transactions
          ? replayFigures({ bytesDone: reading.bytesDone, expected: reading.expected, transactions, rate })
          : progressFigures({ phase: reading.phase, bytesDone: reading.bytesDone, expected: reading.expected, rate })),
        rateBytesPerSecond: transactions ? null : rounded,
        elapsedMs: Math.max(0, Math.round(atMs - startedAtMs)),
        ...(transactions ? { transactionsDone: transactions.done, transactionsTotal: transactions.total, rateTransactionsPerSecond: rounded } : {}),
      };
    },
  };
}

/**
 * Total, percent and time left. Once the data has all passed, the total is what passed and
 * the bar is full. Before that, a count past its estimate means the estimate was wrong:
 * the total, percent and time left become unknown rather than a bar stuck at 99 %.
 */
export function progressFigures(input: {
  phase: ProgressPhase;
  bytesDone: number;
  expected: { bytes: number; basis: TotalBasis } | null;
  rate: number | null;
}): Pick<ReportedProgress, 'totalBytes' | 'totalBasis' | 'percent' | 'etaSeconds'> {
  if (transferredPhases.has(input.phase)) {
    return { totalBytes: input.bytesDone, totalBasis: input.expected?.basis ?? null, percent: 100, etaSeconds: 0 };
  }
  const expected = input.expected;
  if (!expected || input.bytesDone > expected.bytes) return { totalBytes: null, totalBasis: null, percent: null, etaSeconds: null };
  return { totalBytes: expected.bytes, totalBasis: expected.basis, ...shareFigures(input.bytesDone, expected.bytes, input.rate) };
}

/**
 * A replay's figures: the bytes are all restored (the total is what passed), and the percent
 * and time left are of the transactions replayed, against the exact number to replay.
 */
export function replayFigures(input: {
  bytesDone: number;
  expected: { bytes: number; basis: TotalBasis } | null;
  transactions: { done: number; total: number };
  rate: number | null;
}): Pick<ReportedProgress, 'totalBytes' | 'totalBasis' | 'percent' | 'etaSeconds'> {
  const { done, total } = input.transactions;
  const counted = total > 0 && done <= total ? shareFigures(done, total, input.rate) : { percent: null, etaSeconds: null };
  return { totalBytes: input.bytesDone, totalBasis: input.expected?.basis ?? null, ...counted };
}

/** Percent and time left of a count (bytes or transactions) short of its total, at `rate` a second. */
function shareFigures(done: number, total: number, rate: number | null): Pick<ReportedProgress, 'percent' | 'etaSeconds'> {
  return {
    // Never 100 before the end: the work is not done until its phase says so.
    percent: Math.min(99, Math.floor((100 * done) / total)),
    etaSeconds: rate !== null && rate > 0 ? Math.ceil((total - done) / rate) : null,
  };
}
