import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createProgressMeter,
  estimateBackupTotal,
  isLiveProgress,
  parseHeartbeatProgress,
  parseRunProgress,
  progressFigures,
  RATE_WINDOW_MS,
  readStoredProgress,
  replayFigures,
  type ProgressReading,
  type ReportedProgress,
} from '../src/core/runProgress.ts';
import { replayReading } from '../src/pipeline/progressReadings.ts';
import { sampleProgress } from './support/progress.ts';
import { describeProgress } from '../src/cli/progressDisplay.ts';

// The dashboard's own module (plain JavaScript, no types of its own).
const { formatDuration } = (await import(new URL('../web/src/format.js', import.meta.url).href)) as { formatDuration(seconds: number | null): string };
const dashboard = (await import(new URL('../web/src/progress.js', import.meta.url).href)) as {
  progressSentence(progress: ReportedProgress): string;
  progressBrief(progress: ReportedProgress): string;
};

const MiB = 1024 * 1024;

const dumping = (bytesDone: number, expected: ProgressReading['expected'] = { bytes: 100 * MiB, basis: 'previous-backup' }): ProgressReading => ({
  phase: 'dumping',
  bytesDone,
  bytesStored: Math.floor(bytesDone / 3),
  expected,
});

describe('live progress, decided in pure code', () => {
  it("estimates a backup's total from the previous backup, else the database size, else not at all", () => {
    assert.deepEqual(estimateBackupTotal({ previousBackupBytes: 5_000, databaseBytes: 9_000 }), { bytes: 5_000, basis: 'previous-backup' });
    assert.deepEqual(estimateBackupTotal({ previousBackupBytes: null, databaseBytes: 9_000 }), { bytes: 9_000, basis: 'database-size' });
    assert.deepEqual(estimateBackupTotal({ previousBackupBytes: 0, databaseBytes: 9_000 }), { bytes: 9_000, basis: 'database-size' }, 'an empty previous backup says nothing');
    assert.equal(estimateBackupTotal({ previousBackupBytes: null, databaseBytes: null }), null);
  });

  it('measures the rate over the recent window, not since the start', () => {
    const meter = createProgressMeter('backup', 0);
    // Slow for a minute, then fast: the rate is the fast one.
    let at = 0;
    let bytes = 0;
    for (; at <= 60_000; at += 1_000, bytes += 100_000) meter.read(dumping(bytes), at);
    for (let i = 0; i < 20; i++, at += 1_000, bytes += 5 * MiB) meter.read(dumping(bytes, null), at);
    const fast = meter.read(dumping(bytes, null), at);
    assert.equal(fast.rateBytesPerSecond, 5 * MiB);
    assert.equal(fast.elapsedMs, at);
    // A stall shows within the window: the rate falls while the count stands still.
    const stalled = meter.read(dumping(bytes, null), at + RATE_WINDOW_MS / 2);
    assert.ok(stalled.rateBytesPerSecond! < 5 * MiB && stalled.rateBytesPerSecond! > 0, String(stalled.rateBytesPerSecond));
    assert.equal(meter.read(dumping(bytes, null), at + RATE_WINDOW_MS + 1).rateBytesPerSecond, 0, 'a whole window without bytes is 0 B/s');
  });

  it('says nothing of the rate over too short a span, and starts again when a count goes back', () => {
    const meter = createProgressMeter('restore', 0);
    assert.equal(meter.read(dumping(0), 0).rateBytesPerSecond, null);
    assert.equal(meter.read(dumping(MiB), 100).rateBytesPerSecond, null, '100 ms say more about chunk sizes than speed');
    assert.equal(meter.read(dumping(2 * MiB), 1_000).rateBytesPerSecond, 2 * MiB);
    // A new phase counting from zero.
    const reset = meter.read({ phase: 'restoring', bytesDone: 0, bytesStored: 0, expected: { bytes: 10 * MiB, basis: 'manifest' } }, 1_500);
    assert.equal(reset.rateBytesPerSecond, null);
    const restoring = meter.read({ phase: 'restoring', bytesDone: MiB, bytesStored: 0, expected: { bytes: 10 * MiB, basis: 'manifest' } }, 2_500);
    assert.equal(restoring.rateBytesPerSecond, MiB);
    assert.equal(restoring.operation, 'restore');
    assert.equal('bytesDumped' in restoring, false, 'only backups say bytesDumped');
  });

  it('percent and time left against the total; 100 % only once the data has passed', () => {
    assert.deepEqual(progressFigures({ phase: 'dumping', bytesDone: 40, expected: { bytes: 100, basis: 'previous-backup' }, rate: 10 }), {
      totalBytes: 100,
      totalBasis: 'previous-backup',
      percent: 40,
      etaSeconds: 6,
    });
    assert.equal(progressFigures({ phase: 'dumping', bytesDone: 100, expected: { bytes: 100, basis: 'previous-backup' }, rate: 10 }).percent, 99);
    assert.deepEqual(progressFigures({ phase: 'manifest', bytesDone: 120, expected: { bytes: 100, basis: 'previous-backup' }, rate: 10 }), {
      totalBytes: 120,
      totalBasis: 'previous-backup',
      percent: 100,
      etaSeconds: 0,
    });
    assert.equal(progressFigures({ phase: 'dumping', bytesDone: 40, expected: { bytes: 100, basis: 'database-size' }, rate: null }).etaSeconds, null, 'no rate, no time left');
  });

  it('a count past its estimate makes the total unknown rather than a bar stuck at 99 %', () => {
    assert.deepEqual(progressFigures({ phase: 'dumping', bytesDone: 101, expected: { bytes: 100, basis: 'previous-backup' }, rate: 10 }), {
      totalBytes: null,
      totalBasis: null,
      percent: null,
      etaSeconds: null,
    });
    assert.deepEqual(progressFigures({ phase: 'dumping', bytesDone: 5, expected: null, rate: 10 }), { totalBytes: null, totalBasis: null, percent: null, etaSeconds: null });
  });

  it("a replay counts transactions, not bytes: percent, rate and time left of the cut's transactions, the restored bytes kept", () => {
    const meter = createProgressMeter('restore', 0);
    const restored = { phase: 'checking' as const, bytesRead: 3 * MiB, bytesTotal: 3 * MiB, bytesRestored: 10 * MiB, bytesRestoredTotal: 10 * MiB, elapsedMs: 0 };
    const checking = meter.read({ phase: 'checking', bytesDone: 10 * MiB, bytesStored: 3 * MiB, expected: { bytes: 10 * MiB, basis: 'manifest' } }, 0);
    assert.equal(checking.percent, 100);
    // The replay starts: the bytes' rate is not the transactions' (the window starts again).
    const start = meter.read(replayReading(restored, { done: 0, total: 247_575 }), 2_000);
    assert.equal(start.phase, 'replaying');
    assert.equal(start.percent, 0);
    assert.equal(start.rateTransactionsPerSecond, null);
    assert.equal(start.etaSeconds, null);
    const replaying = meter.read(replayReading(restored, { done: 12_000, total: 247_575 }), 5_000);
    assert.deepEqual(
      { ...replaying, elapsedMs: undefined },
      {
        operation: 'restore',
        phase: 'replaying',
        bytesDone: 10 * MiB,
        bytesStored: 3 * MiB,
        totalBytes: 10 * MiB,
        totalBasis: 'manifest',
        percent: 4,
        rateBytesPerSecond: null,
        etaSeconds: 59,
        transactionsDone: 12_000,
        transactionsTotal: 247_575,
        rateTransactionsPerSecond: 4_000,
        elapsedMs: undefined,
      },
    );
    assert.deepEqual(parseRunProgress(replaying), replaying, 'the contract carries it as it is');
    assert.equal(describeProgress(replaying), 'replaying 12,000 of 247,575 transactions (4%), 4,000 transactions/s, about 59.0 s left');
    assert.equal(dashboard.progressSentence(replaying), 'Replaying: 12,000 of 247,575 transactions, 4,000 transactions/s, about 59 s left');
    assert.equal(dashboard.progressBrief(replaying), '4 % · 4,000 transactions/s · 59 s left');
    // Never 100 before the end; a count past its total (never expected) is no percent at all.
    assert.equal(replayFigures({ bytesDone: 1, expected: null, transactions: { done: 500, total: 500 }, rate: 10 }).percent, 99);
    assert.deepEqual(replayFigures({ bytesDone: 1, expected: null, transactions: { done: 501, total: 500 }, rate: 10 }), {
      totalBytes: 1,
      totalBasis: null,
      percent: null,
      etaSeconds: null,
    });
  });

  it('parses what runners report: unknown fields dropped, wrong types and ranges refused', () => {
    assert.deepEqual(parseRunProgress({ ...sampleProgress(), updatedAt: 'forged', script: '<b>' }), sampleProgress());
    assert.equal(parseRunProgress({ ...sampleProgress(), percent: 101 }), null);
    assert.equal(parseRunProgress({ ...sampleProgress(), phase: 'uploading' }), null);
    assert.equal(parseRunProgress({ ...sampleProgress(), bytesDone: -1 }), null);
    assert.equal(parseRunProgress({ bytes: 1024 }), null);
    assert.equal(parseRunProgress(null), null);
  });

  it('reads stored progress, the shape backups kept before it had an operation included', () => {
    assert.deepEqual(readStoredProgress({ ...sampleProgress(), updatedAt: '2026-01-01T00:00:00.000000Z' }), { ...sampleProgress(), updatedAt: '2026-01-01T00:00:00.000000Z' });
    assert.deepEqual(readStoredProgress({ phase: 'done', bytesDumped: 5_000, bytesStored: 2_000, rateBytesPerSecond: 100, elapsedMs: 50 }), {
      operation: 'backup',
      phase: 'done',
      bytesDone: 5_000,
      bytesStored: 2_000,
      bytesDumped: 5_000,
      totalBytes: 5_000,
      totalBasis: null,
      percent: 100,
      rateBytesPerSecond: 100,
      etaSeconds: 0,
      elapsedMs: 50,
    });
    assert.equal(readStoredProgress({ bytes: 1 }), null);
    assert.equal(readStoredProgress('text'), null);
    // A runner pinned to an earlier version still sends that shape with its heartbeats.
    assert.equal(parseHeartbeatProgress({ phase: 'dumping', bytesDumped: 10, bytesStored: 4, updatedAt: 'forged' })?.bytesDone, 10);
    assert.equal('updatedAt' in parseHeartbeatProgress({ ...sampleProgress(), updatedAt: 'forged' })!, false, "the time is the catalog's");
  });

  it("live: a run's own progress while it is active, a restore's whenever it shows", () => {
    assert.equal(isLiveProgress(sampleProgress(), true), true);
    assert.equal(isLiveProgress(sampleProgress({ phase: 'done' }), false), false);
    assert.equal(isLiveProgress(sampleProgress({ operation: 'restore', phase: 'restoring' }), false), true);
    assert.equal(isLiveProgress(null, true), false);
  });

  it('the dashboard writes durations in ms under a second, never negative, rounded per unit', () => {
    const cases: Array<[number | null, string]> = [
      [0.618, '618 ms'],
      [0, '0 ms'],
      [-3.2, '0 ms'],
      [0.9996, '1.0 s'],
      [4.25, '4.3 s'],
      [9.96, '10 s'],
      [38.4, '38 s'],
      [59.7, '1 min 0 s'],
      [125, '2 min 5 s'],
      [3599.7, '1 h 0 min'],
      [3 * 3600 + 10 * 60, '3 h 10 min'],
      [52 * 3600, '2 d 4 h'],
      [null, '—'],
      [Number.NaN, '—'],
    ];
    for (const [seconds, text] of cases) assert.equal(formatDuration(seconds), text, String(seconds));
  });
});
