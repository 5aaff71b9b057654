import { estimateBackupTotal, type ProgressReading } from '../core/runProgress.ts';
import type { BackupProgress } from './backup.ts';
import type { RestoreProgress } from './restoreInput.ts';

/** A backup's counts as a reading: its total estimated from the previous backup, else from the database's size. */
export function backupReading(progress: BackupProgress, previousBackupBytes: number | null): ProgressReading {
  return {
    phase: progress.phase,
    bytesDone: progress.bytesDumped,
    bytesStored: progress.bytesStored,
    expected: estimateBackupTotal({ previousBackupBytes, databaseBytes: progress.databaseBytes }),
  };
}

/** A restore's (or a drill's) counts as a reading: its total is the manifest's. */
export function restoreReading(progress: RestoreProgress): ProgressReading {
  return {
    phase: progress.phase,
    bytesDone: progress.bytesRestored,
    bytesStored: progress.bytesRead,
    expected: progress.bytesRestoredTotal > 0 ? { bytes: progress.bytesRestoredTotal, basis: 'manifest' } : null,
  };
}

/**
 * A point-in-time restore's replay as a reading: the base restore's bytes as they ended, and
 * the transactions replayed of those to replay.
 */
export function replayReading(restored: RestoreProgress | null, transactions: { done: number; total: number }): ProgressReading {
  const base = restored ? restoreReading(restored) : { bytesDone: 0, bytesStored: 0, expected: null };
  return { phase: 'replaying', bytesDone: base.bytesDone, bytesStored: base.bytesStored, expected: base.expected, transactions };
}
