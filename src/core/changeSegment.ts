import { z } from 'zod';

/**
 * The change archive of a continuous target: what its streamer writes and what a
 * point-in-time restore reads. Everything here is the contract between the two; see
 * docs/CONTINUOUS.md for the whole design.
 *
 * Store layout, beside the target's backups (pruned with the bases that replay them, src/operations/pruneSegments.ts):
 *   `<target>/continuous/<slot>/<startLsn>-<endLsn>-g<generation>.jsonl.zst[.age]`  the changes
 *   `<target>/continuous/<slot>/<startLsn>-<endLsn>-g<generation>.json`            its manifest, written last
 * LSNs in keys are 16 upper-case hex digits (`lsnKey`), so key order is LSN order. A segment
 * is part of the archive only once its manifest is stored; its data object alone is debris.
 */
export const SEGMENT_FORMAT = 'backstop.segment';
export const SEGMENT_VERSION = 1;

const lsnPattern = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;
export const lsnSchema = z.string().regex(lsnPattern, 'an LSN such as 0/16B3748');

/** An LSN as a bigint, for comparison; throws on anything that is not one. */
export function lsnToBigInt(lsn: string): bigint {
  if (!lsnPattern.test(lsn)) throw new Error(`Not an LSN: ${JSON.stringify(lsn)}`);
  const [high, low] = lsn.split('/') as [string, string];
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

export function bigIntToLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function compareLsn(a: string, b: string): number {
  const x = lsnToBigInt(a);
  const y = lsnToBigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** 16 hex digits: sorts as the LSN does. */
export function lsnKey(lsn: string): string {
  return lsnToBigInt(lsn).toString(16).toUpperCase().padStart(16, '0');
}

/**
 * The replication slot and publication of a target: `backstop_` and the target id's hex
 * digits, and when continuity is turned on again after an earlier stream, `_` and a fresh
 * suffix. Only [a-z0-9_], so that the name is safe in the replication grammar and within
 * PostgreSQL's 63-byte limit (50 at most), and one per target even across catalogs' target
 * renames. The suffix gives each stream its own folder of the change archive: a stream begun
 * again (perhaps on another server, whose LSNs are not comparable with the old ones) never
 * shares LSN order with the segments of the one before.
 */
export function slotNameFor(targetId: string, suffix?: string): string {
  if (suffix !== undefined && !/^[a-z0-9]{1,8}$/.test(suffix)) throw new Error(`Not a slot suffix: ${JSON.stringify(suffix)}`);
  return `backstop_${targetId.replace(/-/g, '').toLowerCase()}${suffix === undefined ? '' : `_${suffix}`}`;
}

/** One column of a relation as the stream described it. Values travel in text form. */
export const segmentColumnSchema = z.object({
  name: z.string(),
  /** The type's OID on the source, and its name there (`format_type`), for the reader's casts. */
  typeOid: z.number().int(),
  /** Part of the replica identity (the primary key, usually). */
  key: z.boolean(),
});

/**
 * A table's shape. Each segment starts with a `relation` line for every table it touches (a
 * segment is read on its own), and carries a new one where the stream reported a change of
 * shape: `schemaChange` is then true, and a restore crossing it is told so.
 */
export const relationLineSchema = z.object({
  type: z.literal('relation'),
  schema: z.string(),
  table: z.string(),
  columns: z.array(segmentColumnSchema),
  /** `default` (primary key), `full`, `index`, or `nothing` (never published: see docs). */
  replicaIdentity: z.enum(['default', 'full', 'index', 'nothing']),
  schemaChange: z.boolean(),
});

/** Column name → text value (null: SQL NULL). Unchanged TOAST values are absent, see `unchanged`. */
const rowSchema = z.record(z.string(), z.string().nullable());

export const changeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('insert'), schema: z.string(), table: z.string(), new: rowSchema }),
  z.object({
    kind: z.literal('update'),
    schema: z.string(),
    table: z.string(),
    /** The old key (or whole old row under REPLICA IDENTITY FULL) when the stream sent it; else the key is in `new`. */
    old: rowSchema.nullable(),
    new: rowSchema,
    /** Columns whose (TOASTed) value did not change and was not sent: leave them as they are. */
    unchanged: z.array(z.string()),
  }),
  z.object({ kind: z.literal('delete'), schema: z.string(), table: z.string(), old: rowSchema }),
  z.object({
    kind: z.literal('truncate'),
    tables: z.array(z.object({ schema: z.string(), table: z.string() })),
    cascade: z.boolean(),
    restartIdentity: z.boolean(),
  }),
]);
export type Change = z.infer<typeof changeSchema>;

/** One committed transaction, in commit order. `lsn` is its commit record's LSN, the key of "exactly once". */
export const transactionLineSchema = z.object({
  type: z.literal('transaction'),
  xid: z.number().int(),
  lsn: lsnSchema,
  /** The end of the commit record: the position to confirm once this transaction is stored. */
  endLsn: lsnSchema,
  committedAt: z.string().datetime({ offset: true }),
  changes: z.array(changeSchema),
});

/**
 * Sequences sampled when the segment closed. Sequences are not transactional and only grow,
 * so a sample taken after the segment's last commit is at least every value its transactions
 * used: a restore to any point of the segment sets each sequence to this value.
 */
export const sequencesLineSchema = z.object({
  type: z.literal('sequences'),
  sequences: z.array(z.object({ schema: z.string(), name: z.string(), lastValue: z.string(), isCalled: z.boolean() })),
});

export const segmentLineSchema = z.discriminatedUnion('type', [relationLineSchema, transactionLineSchema, sequencesLineSchema]);
export type SegmentLine = z.infer<typeof segmentLineSchema>;
export type TransactionLine = z.infer<typeof transactionLineSchema>;
export type RelationLine = z.infer<typeof relationLineSchema>;

/** The manifest of one segment: written after its data, in the store and (as a row) in the catalog. */
export const segmentManifestSchema = z.object({
  format: z.literal(SEGMENT_FORMAT),
  formatVersion: z.literal(SEGMENT_VERSION),
  backstopVersion: z.string(),
  target: z.string(),
  targetId: z.string().uuid(),
  slot: z.string(),
  /** The streamer lease's fencing generation that wrote it. */
  generation: z.number().int().positive(),
  /**
   * Transactions with commit LSN in [startLsn, endLsn): startLsn is the position confirmed
   * before it, where the next commit record may begin exactly; endLsn is the end of its last
   * commit record (that transaction's `endLsn`), the position confirmed after it. A reader
   * keeps both bounds: segments may overlap, and transactions are deduplicated by commit LSN.
   */
  startLsn: lsnSchema,
  endLsn: lsnSchema,
  firstCommitAt: z.string().datetime({ offset: true }),
  lastCommitAt: z.string().datetime({ offset: true }),
  transactions: z.number().int().positive(),
  /** Tables whose shape changed within the segment (`schema.table`). */
  schemaChanges: z.array(z.string()),
  file: z.object({
    name: z.string(),
    size: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    uncompressedSize: z.number().int().nonnegative(),
    compression: z.enum(['zstd', 'gzip', 'none']),
    encrypted: z.boolean(),
  }),
});
export type SegmentManifest = z.infer<typeof segmentManifestSchema>;

export function segmentBaseName(startLsn: string, endLsn: string, generation: number): string {
  return `${lsnKey(startLsn)}-${lsnKey(endLsn)}-g${generation}`;
}

export function segmentPrefix(target: string, slot: string): string {
  return `${target}/continuous/${slot}/`;
}

/** A segment's manifest as stored, and the key it is stored under. */
export interface StoredSegment {
  manifestKey: string;
  manifest: SegmentManifest;
}
