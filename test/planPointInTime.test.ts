import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lsnToBigInt } from '../src/core/changeSegment.ts';
import type { BackstopError } from '../src/core/errors.ts';
import { findReplayCut, planPointInTime, restoreWindows, type ContinuousBase, type SegmentSummary } from '../src/core/planPointInTime.ts';
import { isoToMicros, microsToIso, parseRestorePoint } from '../src/core/restorePoint.ts';

const segment = (startLsn: string, endLsn: string, firstCommitAt: string, lastCommitAt: string, generation = 1): SegmentSummary => ({
  manifestKey: `t/continuous/s/${startLsn}-${endLsn}-g${generation}.json`,
  slot: 's',
  generation,
  startLsn,
  endLsn,
  firstCommitAt,
  lastCommitAt,
  schemaChanges: [],
});
const base = (runId: string, baseLsn: string, finishedAt: string): ContinuousBase => ({ runId, slot: 's', baseLsn, finishedAt });

const bases = [base('b1', '0/100', '2026-12-06T10:00:10Z'), base('b2', '0/500', '2026-12-06T10:05:10Z')];
const segments = [
  segment('0/100', '0/200', '2026-12-06T10:00:05Z', '2026-12-06T10:01:00Z'),
  segment('0/200', '0/400', '2026-12-06T10:01:05Z', '2026-12-06T10:04:00Z'),
  // Overlaps the one before (a streamer re-sent after a crash), and straddles base b2.
  segment('0/300', '0/600', '2026-12-06T10:03:00Z', '2026-12-06T10:06:00Z', 2),
  segment('0/600', '0/700', '2026-12-06T10:06:05Z', '2026-12-06T10:07:00Z', 2),
  // After a gap: 0/700 to 0/800 is missing.
  segment('0/800', '0/900', '2026-12-06T10:08:05Z', '2026-12-06T10:09:00Z', 3),
];

describe('choosing the base and the segments of a point-in-time restore', () => {
  it('chains overlapping segments from each base up to a gap, and starts a window where the base is known to be seen', () => {
    const [newest, oldest] = restoreWindows(bases, segments);
    assert.equal(newest!.base.runId, 'b2');
    assert.deepEqual(
      newest!.chain.map((s) => s.startLsn),
      ['0/300', '0/600'],
    );
    // b2 is straddled by 0/300..0/600: only its run's end proves a time sees it.
    assert.equal(microsToIso(newest!.fromMicros), '2026-12-06T10:05:10.000000Z');
    assert.equal(newest!.toLsn, lsnToBigInt('0/700'));
    assert.deepEqual(newest!.gap, { fromLsn: lsnToBigInt('0/700'), toLsn: lsnToBigInt('0/800') });
    // b1's first segment starts at its LSN: its first commit (before the run ended) sees it.
    assert.equal(microsToIso(oldest!.fromMicros), '2026-12-06T10:00:05.000000Z');
    assert.deepEqual(
      oldest!.chain.map((s) => s.startLsn),
      ['0/100', '0/200', '0/300', '0/600'],
    );
  });

  it('takes the newest base whose window holds the point, and only the segments it needs', () => {
    const early = planPointInTime(bases, segments, parseRestorePoint('2026-12-06T10:02:00Z'));
    assert.equal(early.window.base.runId, 'b1');
    assert.deepEqual(
      early.segments.map((s) => s.startLsn),
      ['0/100', '0/200'],
    );
    const late = planPointInTime(bases, segments, parseRestorePoint('2026-12-06T10:06:30Z'));
    assert.equal(late.window.base.runId, 'b2');
    const byLsn = planPointInTime(bases, segments, parseRestorePoint('0/650'));
    assert.equal(byLsn.window.base.runId, 'b2');
    assert.deepEqual(byLsn.stop, { kind: 'lsn', lsn: lsnToBigInt('0/650') });
    const latest = planPointInTime(bases, segments, parseRestorePoint('latest'));
    assert.equal(latest.window.base.runId, 'b2');
    assert.deepEqual(latest.stop, { kind: 'end' });
  });

  it('refuses a point before the first base, after the last stored commit or in a gap, printing every window', () => {
    for (const point of ['2026-12-06T09:00:00Z', '2026-12-06T10:08:30Z', '0/850', '0/50']) {
      assert.throws(
        () => planPointInTime(bases, segments, parseRestorePoint(point)),
        (error: BackstopError) => {
          assert.equal(error.code, 'POINT_NOT_RESTORABLE');
          assert.match(error.message, /base b1 \(slot s\): from 2026-12-06T10:00:05\.000000Z \(LSN 0\/100\) to 2026-12-06T10:07:00\.000000Z \(LSN 0\/700\)/);
          assert.match(error.message, /then a gap: no segment covers LSN 0\/700 to 0\/800/);
          return true;
        },
      );
    }
  });

  it('cuts the replay at the last transaction at or before the point, each commit LSN once, the base LSN itself included', () => {
    const t = (lsn: string, at: string) => ({ lsn: lsnToBigInt(lsn), micros: isoToMicros(at)! });
    const read = [
      [t('0/100', '2026-12-06T10:00:00.000001Z'), t('0/150', '2026-12-06T10:00:00.000002Z')],
      [t('0/150', '2026-12-06T10:00:00.000002Z'), t('0/180', '2026-12-06T10:00:00.000004Z'), t('0/190', '2026-12-06T10:00:00.000005Z')],
    ];
    assert.deepEqual(findReplayCut(read, lsnToBigInt('0/100'), { kind: 'end' }), {
      lsn: lsnToBigInt('0/190'),
      micros: isoToMicros('2026-12-06T10:00:00.000005Z'),
      transactions: 4,
      segment: 1,
    });
    assert.equal(findReplayCut(read, lsnToBigInt('0/100'), { kind: 'time', micros: isoToMicros('2026-12-06T10:00:00.000003Z')! }).lsn, lsnToBigInt('0/150'));
    assert.equal(findReplayCut(read, lsnToBigInt('0/100'), { kind: 'time', micros: isoToMicros('2026-12-06T10:00:00.000003Z')! }).segment, 0);
    assert.equal(findReplayCut(read, lsnToBigInt('0/100'), { kind: 'lsn', lsn: lsnToBigInt('0/185') }).transactions, 3);
    assert.equal(findReplayCut(read, lsnToBigInt('0/200'), { kind: 'end' }).lsn, null);
  });

  it('reads points to the microsecond, with their offset, and refuses anything else', () => {
    assert.equal(isoToMicros('2026-12-06T10:00:00.123456Z')! - isoToMicros('2026-12-06T10:00:00.123455Z')!, 1n);
    assert.equal(isoToMicros('2026-12-06 11:00:00+01:00'), isoToMicros('2026-12-06T10:00:00Z'));
    assert.deepEqual(parseRestorePoint('LATEST'), { kind: 'latest' });
    assert.equal(parseRestorePoint('1/a0').kind, 'lsn');
    for (const bad of ['2026-12-06T10:00:00', 'yesterday', '0/XYZ', '2026-13-01T00:00:00Z']) {
      assert.throws(
        () => parseRestorePoint(bad),
        (error: BackstopError) => error.code === 'INVALID_INPUT' && error.field === 'at',
      );
    }
  });
});
