import { bigIntToLsn, lsnToBigInt } from './changeSegment.ts';
import { BackstopError } from './errors.ts';
import { describeRestorePoint, isoToMicros, microsToIso, type RestorePoint } from './restorePoint.ts';

/** A succeeded base backup of a continuous target: its run, its slot and its consistent LSN. */
export interface ContinuousBase {
  runId: string;
  slot: string;
  baseLsn: string;
  /** When the run finished: its snapshot was taken before, so any time after it sees the base. */
  finishedAt: string;
}

/** What a segment's manifest says of it, and where its manifest is stored. */
export interface SegmentSummary {
  manifestKey: string;
  slot: string;
  generation: number;
  startLsn: string;
  endLsn: string;
  firstCommitAt: string;
  lastCommitAt: string;
  schemaChanges: string[];
}

/** What one base backup and the unbroken run of segments after it can restore. */
export interface RestoreWindow {
  base: ContinuousBase;
  /** The segments that chain from the base's LSN without a gap, in LSN order. */
  chain: SegmentSummary[];
  fromLsn: bigint;
  /** The earliest time known to see the base: its run's end, or the first commit streamed after it. */
  fromMicros: bigint;
  toLsn: bigint;
  toMicros: bigint;
  /** Where the chain stops although later segments exist: the missing range. */
  gap: { fromLsn: bigint; toLsn: bigint } | null;
  schemaChanges: string[];
}

export interface PointInTimePlan {
  window: RestoreWindow;
  /** The segments to read, in chain order. */
  segments: SegmentSummary[];
  /** Replay every transaction after the base up to this: an LSN (inclusive), a commit time (inclusive), or the whole chain. */
  stop: { kind: 'lsn'; lsn: bigint } | { kind: 'time'; micros: bigint } | { kind: 'end' };
}

const micros = (iso: string): bigint => {
  const value = isoToMicros(iso);
  if (value === null) throw new Error(`Not a time with an offset: ${iso}`);
  return value;
};

/**
 * The segments of `base`'s slot that continue from its LSN without a gap. Segments may
 * overlap (a streamer that crashed after storing a segment but before confirming it re-sends
 * its transactions): at each step the one reaching furthest is taken, and a restore skips
 * transactions it has applied already by commit LSN.
 */
function windowOf(base: ContinuousBase, segments: readonly SegmentSummary[]): RestoreWindow {
  const ofSlot = segments.filter((segment) => segment.slot === base.slot);
  const fromLsn = lsnToBigInt(base.baseLsn);
  const chain: SegmentSummary[] = [];
  let covered = fromLsn;
  for (;;) {
    let next: SegmentSummary | null = null;
    for (const segment of ofSlot) {
      if (lsnToBigInt(segment.startLsn) <= covered && lsnToBigInt(segment.endLsn) > covered && (!next || lsnToBigInt(segment.endLsn) > lsnToBigInt(next.endLsn))) next = segment;
    }
    if (!next) break;
    chain.push(next);
    covered = lsnToBigInt(next.endLsn);
  }
  const beyond = ofSlot.map((segment) => lsnToBigInt(segment.startLsn)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const resumes = beyond.find((start) => start > covered);
  const gap = resumes === undefined ? null : { fromLsn: covered, toLsn: resumes };
  // A segment that starts at or after the base holds only transactions after it: its first
  // commit time sees the base. One that straddles the base may begin with older commits, so
  // it proves nothing without being read; the run's end is the bound then.
  const firstAfter = chain.find((segment) => lsnToBigInt(segment.startLsn) >= fromLsn);
  const finished = micros(base.finishedAt);
  const fromMicros = firstAfter && micros(firstAfter.firstCommitAt) < finished ? micros(firstAfter.firstCommitAt) : finished;
  const last = chain.at(-1);
  const toMicros = last && micros(last.lastCommitAt) > fromMicros ? micros(last.lastCommitAt) : fromMicros;
  return {
    base,
    chain,
    fromLsn,
    fromMicros,
    toLsn: covered,
    toMicros,
    gap,
    schemaChanges: [...new Set(chain.flatMap((segment) => segment.schemaChanges))],
  };
}

/** Every base's window, newest base first. */
export function restoreWindows(bases: readonly ContinuousBase[], segments: readonly SegmentSummary[]): RestoreWindow[] {
  return [...bases]
    .sort((a, b) => (lsnToBigInt(b.baseLsn) > lsnToBigInt(a.baseLsn) ? 1 : lsnToBigInt(b.baseLsn) < lsnToBigInt(a.baseLsn) ? -1 : 0))
    .map((base) => windowOf(base, segments));
}

/** The windows in words: what is restorable, from when to when. */
export function describeWindows(windows: readonly RestoreWindow[]): string {
  if (windows.length === 0) return 'nothing is restorable to a point in time yet: the target has no succeeded base backup';
  return [...windows]
    .reverse()
    .map((window) => {
      const range = `from ${microsToIso(window.fromMicros)} (LSN ${bigIntToLsn(window.fromLsn)}) to ${microsToIso(window.toMicros)} (LSN ${bigIntToLsn(window.toLsn)})`;
      const gap = window.gap ? `; then a gap: no segment covers LSN ${bigIntToLsn(window.gap.fromLsn)} to ${bigIntToLsn(window.gap.toLsn)}` : '';
      return `base ${window.base.runId} (slot ${window.base.slot}): ${range}, ${window.chain.length} segment(s)${gap}`;
    })
    .join('\n');
}

/**
 * Chooses how to reach `point`: the newest base backup whose window holds it, and the
 * segments to read. A point no window holds — before the oldest base, after the newest
 * stored commit, or in a gap — is refused with every window printed.
 *
 * A time point must lie between the window's start (a time known to see the base) and its
 * last stored commit: after that, the archive cannot tell whether more was committed. The
 * exact last transaction at or before a time is found by reading the segments (commit times
 * are in their lines); the manifests' first and last commit times say which to read.
 */
export function planPointInTime(bases: readonly ContinuousBase[], segments: readonly SegmentSummary[], point: RestorePoint): PointInTimePlan {
  const windows = restoreWindows(bases, segments);
  const holds = (window: RestoreWindow): boolean => {
    if (point.kind === 'latest') return true;
    if (point.kind === 'lsn') return window.fromLsn <= point.lsn && point.lsn <= window.toLsn;
    return window.fromMicros <= point.micros && point.micros <= window.toMicros;
  };
  const candidates = windows.filter(holds);
  if (candidates.length === 0) {
    throw new BackstopError(
      'POINT_NOT_RESTORABLE',
      `No base backup and unbroken run of change segments reaches ${describeRestorePoint(point)}. Restorable:\n${describeWindows(windows)}`,
    );
  }
  // latest: the window reaching furthest, and of those the newest base (the least to replay).
  const window =
    point.kind === 'latest' ? candidates.reduce((best, next) => (next.toLsn > best.toLsn || (next.toLsn === best.toLsn && next.fromLsn > best.fromLsn) ? next : best)) : candidates[0]!;
  if (point.kind === 'latest') return { window, segments: window.chain, stop: { kind: 'end' } };
  if (point.kind === 'lsn') {
    return { window, segments: window.chain.filter((segment) => lsnToBigInt(segment.startLsn) < point.lsn), stop: { kind: 'lsn', lsn: point.lsn } };
  }
  return { window, segments: window.chain.filter((segment) => micros(segment.firstCommitAt) <= point.micros), stop: { kind: 'time', micros: point.micros } };
}

/** Where a replay ends: the last transaction to apply, and how many there are. */
export interface ReplayCut {
  /** Commit LSN of the last transaction to apply; null: none, the base is the point. */
  lsn: bigint | null;
  micros: bigint | null;
  transactions: number;
  /** Index (in the given order) of the first segment holding the last transaction: its sequences are set. */
  segment: number | null;
}

/**
 * The exact end of a replay, from the transactions' commit LSNs and times as the segments
 * list them (in chain order): every transaction from the base's LSN on, once by commit LSN, up to and
 * including the last one at or before the point. For a time that is the last, in commit
 * order, committed at or before it; commit times are taken just before the commit record is
 * written, so concurrent commits may be a few microseconds out of LSN order, and a replay is
 * always a prefix in LSN order (what the source's own history was).
 */
export function findReplayCut(segments: ReadonlyArray<ReadonlyArray<{ lsn: bigint; micros: bigint }>>, baseLsn: bigint, stop: PointInTimePlan['stop']): ReplayCut {
  // A transaction whose commit record starts at the base's consistent point is not in its
  // snapshot: logical decoding streams every commit at or after that point.
  let seen = baseLsn - 1n;
  const cut: ReplayCut = { lsn: null, micros: null, transactions: 0, segment: null };
  let counted = 0;
  segments.forEach((transactions, index) => {
    for (const transaction of transactions) {
      if (transaction.lsn <= seen) continue;
      seen = transaction.lsn;
      counted++;
      const within = stop.kind === 'end' || (stop.kind === 'lsn' ? transaction.lsn <= stop.lsn : transaction.micros <= stop.micros);
      if (within) Object.assign(cut, { lsn: transaction.lsn, micros: transaction.micros, transactions: counted, segment: index });
    }
  });
  return cut;
}
