import { bigIntToLsn, compareLsn, type SegmentManifest } from './changeSegment.ts';

/**
 * Garbage collection of a continuous target's change archive, pure. A base backup replays the
 * segments that end after its consistent LSN (the first one used may start before it); a
 * segment that ends at or before the consistent LSN of every base backup still kept is used by
 * none of them, whichever slot wrote it (LSNs are positions in the source's one WAL, so a slot
 * dropped and made again writes segments that compare with the bases' LSNs all the same).
 *
 * Only positive evidence deletes, as for backups (src/core/planGarbage.ts):
 * - the bases are every kept backup whose consistent LSN is known, from its catalog row or its
 *   manifest, and every complete backup in the store that no catalog row vouches for; a base
 *   whose LSN could not be read leaves the whole archive in place (it may be the oldest);
 * - the segments are the store's own manifests, never the catalog's rows, so a row lost does
 *   not make a segment still needed look deletable; a manifest that cannot be read or is not
 *   this target's is kept, and so is its data;
 * - a data object whose manifest was never written (a streamer that crashed between the two)
 *   is debris once its newest write is older than the grace period: a streamer writes the
 *   manifest right after its data, so a younger one may still be on its way.
 */

export interface ArchiveSegment {
  manifestKey: string;
  manifest: SegmentManifest;
  dataKey: string;
}

export interface ArchiveObject {
  key: string;
  /** ms since the epoch. */
  lastModified: number;
}

export interface SegmentGarbageInput {
  /** Segments whose manifest was read and binds to the target. */
  segments: ArchiveSegment[];
  /** Segment data objects no manifest in the listing names (readable or not). */
  orphanData: ArchiveObject[];
  /** Consistent LSNs of the base backups kept; null: one of them could not be read, so none is known to be the oldest. */
  baseLsns: string[] | null;
  now: number;
  gracePeriodMs: number;
}

export interface SegmentGarbagePlan {
  /** The oldest kept base's LSN; null when no segment can be judged (no base, or one unread). */
  before: string | null;
  delete: ArchiveSegment[];
  debris: ArchiveObject[];
  /** Debris still inside the grace period. */
  debrisWaiting: number;
}

export function planSegmentGarbage(input: SegmentGarbageInput): SegmentGarbagePlan {
  const expired = (object: ArchiveObject) => input.now - object.lastModified > input.gracePeriodMs;
  const debris = input.orphanData.filter(expired);
  const debrisWaiting = input.orphanData.length - debris.length;
  if (input.baseLsns === null || input.baseLsns.length === 0) return { before: null, delete: [], debris, debrisWaiting };
  const before = input.baseLsns.reduce((oldest, lsn) => (compareLsn(lsn, oldest) < 0 ? lsn : oldest));
  const doomed = input.segments.filter((segment) => compareLsn(segment.manifest.endLsn, before) <= 0);
  return { before, delete: doomed, debris, debrisWaiting };
}

/** `<16 hex start>-<16 hex end>-g<generation>`, then `.json` (the manifest) or `.jsonl…` (its data). */
const segmentKeyPattern = /^(?<start>[0-9A-F]{16})-(?<end>[0-9A-F]{16})-g\d+\.(?<kind>json|jsonl(?:\.[a-z0-9]+)*)$/;

export interface SegmentKey {
  /** `<slot folder>/<base name>`: a manifest and its data share it. */
  segment: string;
  manifest: boolean;
  /** The end LSN the name claims (its manifest, once read, must say the same). */
  endLsn: string;
}

/** What a key under `<target>/continuous/<slot>/` names; null for anything else, which is left alone. */
export function segmentKeyOf(prefix: string, key: string): SegmentKey | null {
  if (!key.startsWith(prefix)) return null;
  const rest = key.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || rest.indexOf('/', slash + 1) !== -1) return null;
  const match = segmentKeyPattern.exec(rest.slice(slash + 1));
  if (!match?.groups) return null;
  const kind = match.groups.kind!;
  return {
    segment: key.slice(0, key.length - kind.length - 1),
    manifest: kind === 'json',
    endLsn: bigIntToLsn(BigInt(`0x${match.groups.end!}`)),
  };
}
