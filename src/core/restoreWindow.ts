import { compareLsn } from './changeSegment.ts';
import type { UnprotectedTable } from './continuousRules.ts';

/**
 * The restorable window of a continuous target: from which second to which second a
 * point-in-time restore can bring the database back, and what limits it. Computed from the
 * catalog alone (base backups' runs, `change_segments`, `continuous_streams`), so every part
 * reads the same answer.
 *
 * A base backup opens a range at its consistent LSN. The range reaches as far as the change
 * segments of its slot chain on from there: the first one used starts at or before the base's
 * LSN, each next one at or before the previous one's end (a segment holds the transactions
 * with commit LSN in (startLsn, endLsn]). Where the chain breaks, transactions may be missing:
 * a gap, which only a later base backup closes.
 */

export interface WindowBase {
  runId: string;
  slot: string;
  lsn: string;
  /** When the base is restorable from: its run's end (the snapshot was taken before it). */
  at: string;
}

export interface WindowSegment {
  slot: string;
  startLsn: string;
  endLsn: string;
  firstCommitAt: string;
  lastCommitAt: string;
  /** Tables whose shape changed within it. */
  schemaChanges: string[];
}

export interface WindowStream {
  state: 'starting' | 'streaming' | 'stopped';
  stoppedReason: string | null;
  stoppedAt: string | null;
  lastCommitAt: string | null;
  /**
   * The newest instant before which every commit is stored: the newest stored commit, or the
   * last time the streamer found nothing unstored (a quiet source is not a lagging one).
   * What the RPO is measured from, here as in /metrics and the `rpo_exceeded` alarm.
   */
  recoveryPoint?: string | null;
  unprotectedTables: UnprotectedTable[];
}

export interface WindowPoint {
  at: string;
  lsn: string;
}

export interface WindowRange {
  from: WindowPoint & { runId: string };
  to: WindowPoint;
}

export type WindowLimit =
  | { kind: 'no_base'; message: string }
  | { kind: 'gap'; message: string; from: WindowPoint; to: WindowPoint }
  | { kind: 'unprotected_tables'; message: string; tables: UnprotectedTable[] }
  | {
      kind: 'schema_change';
      message: string;
      from: string;
      to: string;
      tables: string[];
      /** The first base backup taken after the change: points from it on restore from it without crossing the change. Null: none yet. */
      clearedBy: (WindowPoint & { runId: string }) | null;
    }
  | { kind: 'stream_stopped'; message: string; reason: string | null; at: string | null }
  | { kind: 'starting'; message: string }
  | { kind: 'rpo'; message: string; seconds: number; maxSeconds: number }
  | { kind: 'base_only'; message: string; what: string[] };

export interface RestoreWindow {
  /** The earliest restorable second, or null while no base backup is stored. */
  from: (WindowPoint & { runId: string }) | null;
  /** The latest restorable second: the last durably stored commit reachable from a base. */
  to: WindowPoint | null;
  /** The restorable spans, oldest first; more than one when gaps split the window. */
  ranges: WindowRange[];
  /** Seconds since the recovery point (see WindowStream); null when nothing is known yet. */
  rpoSeconds: number | null;
  limits: WindowLimit[];
}

export interface WindowInput {
  now: string;
  bases: WindowBase[];
  segments: WindowSegment[];
  stream: WindowStream | null;
  maxRpoSeconds: number;
  /** What a restore holds as of its base backup only (see `baseOnlyContent`). */
  baseOnly?: string[];
}

/**
 * What logical decoding does not carry, so that a point-in-time restore holds it as of its
 * base backup: large objects and DDL always; the Supabase profile's roles file and Storage
 * objects too (its base dumps them beside the database).
 */
export function baseOnlyContent(profile: string | undefined): string[] {
  return ['large objects', 'schema changes (DDL)', ...(profile === 'supabase' ? ['roles', 'Storage objects'] : [])];
}

const later = (a: string, b: string) => (Date.parse(a) >= Date.parse(b) ? a : b);

/** How far the segments of the base's slot chain on from its LSN. */
function reach(base: WindowBase, segments: WindowSegment[]): WindowRange & { brokenAt: WindowSegment | null } {
  let lsn = base.lsn;
  let at = base.at;
  let brokenAt: WindowSegment | null = null;
  for (const segment of segments) {
    if (segment.slot !== base.slot || compareLsn(segment.endLsn, lsn) <= 0) continue;
    if (compareLsn(segment.startLsn, lsn) > 0) {
      brokenAt = segment;
      break;
    }
    lsn = segment.endLsn;
    at = later(at, segment.lastCommitAt);
  }
  return { from: { at: base.at, lsn: base.lsn, runId: base.runId }, to: { at, lsn }, brokenAt };
}

export function restoreWindow(input: WindowInput): RestoreWindow {
  const segments = [...input.segments].sort((a, b) => compareLsn(a.startLsn, b.startLsn) || compareLsn(a.endLsn, b.endLsn));
  const bases = [...input.bases].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const limits: WindowLimit[] = [];
  const ranges: WindowRange[] = [];
  const breaks: Array<{ after: WindowPoint; next: WindowSegment }> = [];
  for (const base of bases) {
    const { brokenAt, ...range } = reach(base, segments);
    if (brokenAt) breaks.push({ after: range.to, next: brokenAt });
    const last = ranges.at(-1);
    if (last && Date.parse(range.from.at) <= Date.parse(last.to.at)) {
      if (Date.parse(range.to.at) > Date.parse(last.to.at)) last.to = range.to;
    } else ranges.push(range);
  }
  for (let index = 1; index < ranges.length; index++) {
    const before = ranges[index - 1]!.to;
    const after = ranges[index]!.from;
    limits.push({
      kind: 'gap',
      message: `no restore between ${before.at} and ${after.at}: the change archive breaks after ${before.lsn}, and the next base backup is at ${after.lsn}`,
      from: before,
      to: { at: after.at, lsn: after.lsn },
    });
  }
  const lastRange = ranges.at(-1);
  const trailing = lastRange && breaks.find((item) => item.after.lsn === lastRange.to.lsn && item.after.at === lastRange.to.at);
  if (trailing) {
    limits.push({
      kind: 'gap',
      message: `the change archive breaks after ${trailing.after.lsn} (the next stored segment starts at ${trailing.next.startLsn}): changes after ${trailing.after.at} are restorable only from the next base backup on`,
      from: trailing.after,
      to: { at: trailing.next.firstCommitAt, lsn: trailing.next.startLsn },
    });
  }
  if (ranges.length === 0) limits.push({ kind: 'no_base', message: 'no base backup is stored yet: nothing is restorable until the first one succeeds' });

  const stream = input.stream;
  if (stream?.state === 'starting') limits.push({ kind: 'starting', message: 'continuity is starting: its first base backup has not succeeded yet' });
  if (stream?.state === 'stopped') {
    limits.push({
      kind: 'stream_stopped',
      message: `the change stream is stopped${stream.stoppedReason ? `: ${stream.stoppedReason}` : ''}; the window ends at its last stored commit`,
      reason: stream.stoppedReason,
      at: stream.stoppedAt,
    });
  }
  if (stream && stream.unprotectedTables.length > 0) {
    limits.push({
      kind: 'unprotected_tables',
      message: `${stream.unprotectedTables.length} table(s) not continuously protected (restored as of the base backup only): ${stream.unprotectedTables.map((table) => `${table.schema}.${table.table}`).join(', ')}`,
      tables: stream.unprotectedTables,
    });
  }
  const first = ranges[0];
  for (const segment of segments) {
    if (segment.schemaChanges.length === 0 || !first || !lastRange) continue;
    if (Date.parse(segment.lastCommitAt) < Date.parse(first.from.at) || Date.parse(segment.firstCommitAt) > Date.parse(lastRange.to.at)) continue;
    // A base whose snapshot is at or after the segment's end already has the new shape.
    const after = bases.find((base) => compareLsn(base.lsn, segment.endLsn) >= 0 && Date.parse(base.at) >= Date.parse(segment.firstCommitAt));
    const changed = `the shape of ${segment.schemaChanges.join(', ')} changed between ${segment.firstCommitAt} and ${segment.lastCommitAt}`;
    limits.push({
      kind: 'schema_change',
      message: after
        ? `${changed}: a restore to a point before ${after.at} replays across it from an older base backup (refused where that base lacks the new shape); from ${after.at} on, base backup ${after.runId} restores without crossing it`
        : `${changed}: a restore to a point after it replays across it from an older base backup (refused where that base lacks the new shape) until a base backup taken after it succeeds`,
      from: segment.firstCommitAt,
      to: segment.lastCommitAt,
      tables: segment.schemaChanges,
      clearedBy: after ? { at: after.at, lsn: after.lsn, runId: after.runId } : null,
    });
  }

  const recoveryPoint = [stream?.recoveryPoint ?? null, stream?.lastCommitAt ?? null, ...segments.map((segment) => segment.lastCommitAt)].reduce<string | null>(
    (newest, at) => (at === null ? newest : newest === null ? at : later(newest, at)),
    null,
  );
  const rpoSeconds = recoveryPoint === null ? null : Math.max(0, Math.round((Date.parse(input.now) - Date.parse(recoveryPoint)) / 1000));
  if (rpoSeconds !== null && rpoSeconds > input.maxRpoSeconds && stream?.state !== 'stopped') {
    limits.push({
      kind: 'rpo',
      message: `nothing committed after ${recoveryPoint} is known to be stored: ${rpoSeconds} s, over the bound of ${input.maxRpoSeconds} s (the streamer is behind, failing to store, or not running)`,
      seconds: rpoSeconds,
      maxSeconds: input.maxRpoSeconds,
    });
  }
  if (stream && stream.state !== 'stopped') {
    const what = input.baseOnly ?? baseOnlyContent(undefined);
    limits.push({
      kind: 'base_only',
      message: `not in the change stream, so restored as of the base backup before the point: ${what.join(', ')}; sequences are set to at least every value used by then`,
      what,
    });
  }
  return { from: first?.from ?? null, to: lastRange?.to ?? null, ranges, rpoSeconds, limits };
}
