import type { Pgoutput } from 'pg-logical-replication';
import { bigIntToLsn, compareLsn, lsnToBigInt, type Change, type RelationLine, type SegmentLine, type TransactionLine } from '../core/changeSegment.ts';

/** The committed transactions gathered since the last stored segment, ready to be written. */
export interface PendingSegment {
  /** The position confirmed before it: its transactions all have commit LSN at or after it. */
  startLsn: string;
  /** The end of its last commit record: the position to confirm once it is stored. */
  endLsn: string;
  firstCommitAt: string;
  lastCommitAt: string;
  transactions: number;
  /** Relation lines for every table it touches, then its transactions (and shape changes) in commit order. */
  lines: SegmentLine[];
  schemaChanges: string[];
  /** Bytes of its lines as JSON, about what the segment holds before compression. */
  bytes: number;
}

interface OpenTransaction {
  xid: number;
  commitLsn: string | null;
  changes: Change[];
  /** Each relation it touches, with its shape at the first touch, in touch order. */
  touched: Map<number, RelationLine>;
  bytes: number;
}

type Row = Record<string, string | null>;

/**
 * Turns pgoutput messages (protocol version 1, values in text form) into the lines of the
 * change archive's segments (src/core/changeSegment.ts). Pure: no I/O and no clock, so that
 * every mapping rule is tested without a database.
 *
 * Transactions arrive whole and in commit order (protocol 1 never streams one in progress);
 * a transaction becomes a line at its Commit, so a segment taken between messages holds only
 * committed transactions and the open one goes to the next segment.
 */
export class SegmentBuilder {
  /** Each relation's newest shape, by its OID (a rename keeps the OID). */
  private readonly relations = new Map<number, RelationLine>();
  /** Relations whose shape changed and that no segment has described since (it carries over to the next segment). */
  private readonly changedUntouched = new Set<number>();
  /** The shape each relation the pending segment touches was last described with, in it. */
  private readonly described = new Map<number, RelationLine>();
  private readonly head: RelationLine[] = [];
  private body: SegmentLine[] = [];
  private schemaChanges = new Set<string>();
  private open: OpenTransaction | null = null;
  private startLsn: string;
  private endLsn: string;
  private firstCommitAt: string | null = null;
  private lastCommitAt: string | null = null;
  private transactions = 0;
  private bytes = 0;

  /** `startLsn`: the confirmed position; transactions committed before it were stored already and are skipped. */
  constructor(startLsn: string) {
    this.startLsn = startLsn;
    this.endLsn = startLsn;
  }

  /** Whether a transaction is under way (received in part): its Begin came, its Commit not yet. */
  inTransaction(): boolean {
    return this.open !== null;
  }

  /** Committed transactions wait to be stored. */
  hasPending(): boolean {
    return this.transactions > 0;
  }

  pendingBytes(): number {
    return this.bytes;
  }

  apply(message: Pgoutput.Message): void {
    switch (message.tag) {
      case 'begin':
        this.open = { xid: message.xid, commitLsn: message.commitLsn, changes: [], touched: new Map(), bytes: 0 };
        return;
      case 'relation':
        this.relation(message);
        return;
      case 'insert':
        this.change(message.relation, { kind: 'insert', ...tableOf(message.relation), new: rowOf(message.new) });
        return;
      case 'update': {
        const values = rowOf(message.new);
        const unchanged = message.relation.columns.map((column) => column.name).filter((name) => message.new[name] === undefined);
        const old = message.key ?? message.old;
        this.change(message.relation, { kind: 'update', ...tableOf(message.relation), old: old ? rowOf(old) : null, new: values, unchanged });
        return;
      }
      case 'delete':
        this.change(message.relation, { kind: 'delete', ...tableOf(message.relation), old: rowOf(message.key ?? message.old ?? {}) });
        return;
      case 'truncate': {
        const open = this.requireOpen('truncate');
        for (const relation of message.relations) this.touch(open, relation.relationOid);
        this.add(open, { kind: 'truncate', tables: message.relations.map(tableOf), cascade: message.cascade, restartIdentity: message.restartIdentity });
        return;
      }
      case 'commit':
        this.commit(message);
        return;
      // Types travel as OIDs in relation lines; origins and logical messages are not data.
      case 'type':
      case 'origin':
      case 'message':
        return;
    }
  }

  /** The committed transactions gathered so far as one segment, and a fresh one begun after it; null when there are none. */
  take(): PendingSegment | null {
    if (this.transactions === 0) return null;
    const segment: PendingSegment = {
      startLsn: this.startLsn,
      endLsn: this.endLsn,
      firstCommitAt: this.firstCommitAt!,
      lastCommitAt: this.lastCommitAt!,
      transactions: this.transactions,
      lines: [...this.head, ...this.body],
      schemaChanges: [...this.schemaChanges],
      bytes: this.bytes,
    };
    this.startLsn = this.endLsn;
    this.head.length = 0;
    this.body = [];
    this.described.clear();
    this.schemaChanges = new Set();
    this.firstCommitAt = null;
    this.lastCommitAt = null;
    this.transactions = 0;
    this.bytes = 0;
    return segment;
  }

  private relation(message: Pgoutput.MessageRelation): void {
    const line: RelationLine = {
      type: 'relation',
      schema: message.schema,
      table: message.name,
      columns: message.columns.map((column) => ({ name: column.name, typeOid: column.typeOid, key: (column.flags & 1) === 1 })),
      replicaIdentity: message.replicaIdentity,
      schemaChange: false,
    };
    const known = this.relations.get(message.relationOid);
    this.relations.set(message.relationOid, line);
    // PostgreSQL sends a relation again at every new connection and after any invalidation of
    // its cache: only a different shape is a schema change.
    if (known && !sameShape(known, line)) this.changedUntouched.add(message.relationOid);
  }

  private change(relation: Pgoutput.MessageRelation, change: Change): void {
    const open = this.requireOpen(change.kind);
    this.touch(open, relation.relationOid);
    this.add(open, change);
  }

  /**
   * Records the relation's shape for the transaction: the newest, should DDL within the
   * transaction have changed it between two of its changes (the line before the transaction
   * then lists every column any of them may name).
   */
  private touch(open: OpenTransaction, oid: number): void {
    const shape = this.relations.get(oid);
    if (!shape) throw new Error(`pgoutput sent a change of relation ${oid} before describing it`);
    open.touched.set(oid, shape);
  }

  private add(open: OpenTransaction, change: Change): void {
    open.changes.push(change);
    open.bytes += JSON.stringify(change).length;
  }

  private commit(message: Pgoutput.MessageCommit): void {
    const open = this.requireOpen('commit');
    this.open = null;
    const sentLsn = message.commitLsn ?? open.commitLsn;
    if (!sentLsn || !message.commitEndLsn) throw new Error('pgoutput sent a commit without its LSN');
    // The library pads LSNs to 8 digits a side; PostgreSQL (and the catalog's pg_lsn) does not.
    const commitLsn = canonicalLsn(sentLsn);
    const endLsn = canonicalLsn(message.commitEndLsn);
    // Already stored (the slot re-sends from its own confirmed position, which may lag the
    // catalog's), or a transaction that changed no published table (PostgreSQL before 15 sends
    // those as an empty Begin/Commit): nothing to keep.
    if (compareLsn(commitLsn, this.startLsn) < 0 || open.changes.length === 0) return;
    for (const [oid, shape] of open.touched) this.describe(oid, shape);
    const line: TransactionLine = {
      type: 'transaction',
      xid: open.xid,
      lsn: commitLsn,
      endLsn,
      committedAt: commitTimeText(message.commitTime as bigint),
      changes: open.changes,
    };
    this.body.push(line);
    this.endLsn = endLsn;
    this.firstCommitAt ??= line.committedAt;
    this.lastCommitAt = line.committedAt;
    this.transactions += 1;
    this.bytes += open.bytes + 200;
  }

  /** A relation line for a table a committed transaction touched: at the head the first time, in the body when its shape changed. */
  private describe(oid: number, shape: RelationLine): void {
    const described = this.described.get(oid);
    if (described === undefined) {
      const changed = this.changedUntouched.delete(oid);
      const line = { ...shape, schemaChange: changed };
      this.head.push(line);
      this.described.set(oid, shape);
      this.bytes += JSON.stringify(line).length;
      if (changed) this.schemaChanges.add(`${shape.schema}.${shape.table}`);
    } else if (!sameShape(described, shape)) {
      const line = { ...shape, schemaChange: true };
      this.body.push(line);
      this.described.set(oid, shape);
      this.changedUntouched.delete(oid);
      this.bytes += JSON.stringify(line).length;
      this.schemaChanges.add(`${shape.schema}.${shape.table}`);
    }
  }

  private requireOpen(what: string): OpenTransaction {
    if (!this.open) throw new Error(`pgoutput sent a ${what} outside a transaction`);
    return this.open;
  }
}

function tableOf(relation: Pgoutput.MessageRelation): { schema: string; table: string } {
  return { schema: relation.schema, table: relation.name };
}

/**
 * A tuple as the text values pgoutput sent (see textPgoutputPlugin.ts). An unchanged TOAST
 * value arrives as `undefined` and is left out: the update lists it in `unchanged`.
 */
function rowOf(tuple: Record<string, unknown>): Row {
  const row: Row = {};
  for (const [name, value] of Object.entries(tuple)) {
    if (value === undefined) continue;
    row[name] = value === null ? null : String(value);
  }
  return row;
}

function canonicalLsn(lsn: string): string {
  return bigIntToLsn(lsnToBigInt(lsn));
}

function sameShape(a: RelationLine, b: RelationLine): boolean {
  return JSON.stringify([a.schema, a.table, a.columns, a.replicaIdentity]) === JSON.stringify([b.schema, b.table, b.columns, b.replicaIdentity]);
}

/** Microseconds since the Unix epoch (the reader's conversion) as an ISO time keeping them all. */
export function commitTimeText(microseconds: bigint): string {
  const milliseconds = microseconds / 1000n;
  const iso = new Date(Number(milliseconds)).toISOString();
  const micros = (microseconds % 1_000_000n).toString().padStart(6, '0');
  return `${iso.slice(0, 19)}.${micros}Z`;
}

/**
 * Where a segment's first change of shape shows: the first transaction after a relation line
 * marked `schemaChange` that touches that table (the change itself is DDL, which the stream
 * never carries, committed before it). Null when nothing changed shape.
 */
export function firstSchemaChange(lines: readonly SegmentLine[]): { lsn: string; committedAt: string } | null {
  const changed = new Set<string>();
  for (const line of lines) {
    if (line.type === 'relation' && line.schemaChange) changed.add(`${line.schema}.${line.table}`);
    if (line.type !== 'transaction' || changed.size === 0) continue;
    const touches = line.changes.some((change) =>
      change.kind === 'truncate' ? change.tables.some((table) => changed.has(`${table.schema}.${table.table}`)) : changed.has(`${change.schema}.${change.table}`),
    );
    if (touches) return { lsn: line.lsn, committedAt: line.committedAt };
  }
  return null;
}
