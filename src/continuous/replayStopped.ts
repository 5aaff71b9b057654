import { bigIntToLsn } from '../core/changeSegment.ts';
import { BackstopError } from '../core/errors.ts';

/** How far a replay's committed batches brought the destination. */
export interface ReplayReached {
  /** Source transactions the destination holds after its base. */
  transactions: number;
  batches: number;
  /** The last of them (commit LSN and time); null while the destination holds the base alone. */
  lsn: bigint | null;
  committedAt: string | null;
}

/**
 * The error of a replay that stopped before its point: the cause's own message (a divergence,
 * a missing table, a cancel), then where the destination was left. The replay commits in
 * batches of whole source transactions, so that is the base backup plus every transaction up
 * to the last committed batch: a consistent state of the source, but not the one asked for.
 */
export function replayStopped(error: unknown, reached: ReplayReached, baseLsn: bigint): BackstopError {
  const code = error instanceof BackstopError ? error.code : 'RESTORE_FAILED';
  const message = error instanceof BackstopError ? error.message : `Replay stopped: ${error instanceof Error ? error.message : String(error)}.`;
  const where =
    reached.lsn === null
      ? `Nothing of the replay was committed: the destination holds the base backup alone (LSN ${bigIntToLsn(baseLsn)}), NOT the point requested.`
      : `The destination holds the base backup and the first ${reached.transactions} replayed transaction(s), committed in ${reached.batches} batch(es): it is at LSN ${bigIntToLsn(reached.lsn)}, committed at ${reached.committedAt}, NOT the point requested.`;
  return new BackstopError(code, `${message} ${where} Drop the destination and restore again, or restore to a point before the transaction that stopped the replay.`, { cause: error });
}

/** Where the replay stopped and why; replayStopped adds where that left the destination. */
export function replayError(where: string, problem: string, cause?: unknown): BackstopError {
  return new BackstopError('RESTORE_FAILED', `Replay stopped at ${where}: ${problem}`, cause === undefined ? undefined : { cause });
}
