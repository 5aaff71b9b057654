import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pgoutput } from 'pg-logical-replication';
import { assessAlarms, type ContinuousAlarmFacts, type TargetAlarmFacts } from '../src/core/alarms.ts';
import { segmentLineSchema, type RelationLine, type TransactionLine } from '../src/core/changeSegment.ts';
import { decideSlotGuard } from '../src/continuous/slotGuard.ts';
import { commitTimeText, SegmentBuilder } from '../src/continuous/segmentBuilder.ts';

function relation(
  oid: number,
  name: string,
  columns: Array<[string, number, boolean]>,
  replicaIdentity: Pgoutput.MessageRelation['replicaIdentity'] = 'default',
): Pgoutput.MessageRelation {
  return {
    tag: 'relation',
    relationOid: oid,
    schema: 'public',
    name,
    replicaIdentity,
    columns: columns.map(([column, typeOid, key]) => ({ name: column, flags: key ? 1 : 0, typeOid, typeMod: -1, typeSchema: null, typeName: null, parser: (raw: unknown) => raw })),
    keyColumns: columns.filter(([, , key]) => key).map(([column]) => column),
  };
}

const items = relation(100, 'items', [
  ['id', 23, true],
  ['note', 25, false],
  ['body', 25, false],
]);
const other = relation(200, 'other', [['id', 20, true]]);

let xid = 500;
/** A transaction's messages: Begin, the changes, Commit, with commit LSN 0/<at> and its end 0x20 later. */
function transaction(at: number, changes: Pgoutput.Message[]): Pgoutput.Message[] {
  const commitLsn = `00000000/${at.toString(16).toUpperCase().padStart(8, '0')}`;
  const endLsn = `00000000/${(at + 0x20).toString(16).toUpperCase().padStart(8, '0')}`;
  const commitTime = 1_767_225_600_123_456n + BigInt(at);
  return [{ tag: 'begin', commitLsn, commitTime, xid: ++xid }, ...changes, { tag: 'commit', flags: 0, commitLsn, commitEndLsn: endLsn, commitTime }];
}

const insert = (rel: Pgoutput.MessageRelation, row: Record<string, unknown>): Pgoutput.MessageInsert => ({ tag: 'insert', relation: rel, new: row });

function apply(builder: SegmentBuilder, messages: Pgoutput.Message[]): void {
  for (const message of messages) builder.apply(message);
}

function transactionsOf(lines: ReturnType<SegmentBuilder['take']>): TransactionLine[] {
  return (lines?.lines ?? []).filter((line): line is TransactionLine => line.type === 'transaction');
}

describe('pgoutput messages into segment lines (pure)', () => {
  it('maps inserts, updates, deletes and truncates with text values, the replica identity and unchanged TOAST columns', () => {
    const builder = new SegmentBuilder('0/1000');
    apply(builder, [
      items,
      ...transaction(0x2000, [
        insert(items, { id: '1', note: 'a', body: null }),
        // Default identity, key unchanged: no old tuple; `body` unchanged TOAST (undefined).
        { tag: 'update', relation: items, key: null, old: null, new: { id: '1', note: 'b', body: undefined } },
        { tag: 'update', relation: items, key: { id: '1' }, old: null, new: { id: '2', note: 'b', body: 'x' } },
        { tag: 'delete', relation: items, key: { id: '2' }, old: null },
        { tag: 'truncate', cascade: true, restartIdentity: false, relations: [items] },
      ]),
    ]);
    const segment = builder.take()!;
    for (const line of segment.lines) segmentLineSchema.parse(line);
    const [line] = transactionsOf(segment);
    assert.equal(line!.lsn, '0/2000', 'LSNs as PostgreSQL writes them, not zero-padded');
    assert.equal(line!.endLsn, '0/2020');
    assert.deepEqual(line!.changes, [
      { kind: 'insert', schema: 'public', table: 'items', new: { id: '1', note: 'a', body: null } },
      { kind: 'update', schema: 'public', table: 'items', old: null, new: { id: '1', note: 'b' }, unchanged: ['body'] },
      { kind: 'update', schema: 'public', table: 'items', old: { id: '1' }, new: { id: '2', note: 'b', body: 'x' }, unchanged: [] },
      { kind: 'delete', schema: 'public', table: 'items', old: { id: '2' } },
      { kind: 'truncate', tables: [{ schema: 'public', table: 'items' }], cascade: true, restartIdentity: false },
    ]);
    assert.equal(segment.startLsn, '0/1000');
    assert.equal(segment.endLsn, '0/2020');
  });

  it('takes the whole old row under REPLICA IDENTITY FULL', () => {
    const full = relation(
      300,
      'ledger',
      [
        ['id', 23, true],
        ['amount', 1700, true],
      ],
      'full',
    );
    const builder = new SegmentBuilder('0/1000');
    apply(builder, [full, ...transaction(0x3000, [{ tag: 'delete', relation: full, key: null, old: { id: '9', amount: '1.50' } }])]);
    const segment = builder.take()!;
    assert.deepEqual(transactionsOf(segment)[0]!.changes, [{ kind: 'delete', schema: 'public', table: 'ledger', old: { id: '9', amount: '1.50' } }]);
    assert.equal((segment.lines[0] as RelationLine).replicaIdentity, 'full');
  });

  it('starts each segment with a relation line for every table it touches, and only those', () => {
    const builder = new SegmentBuilder('0/1000');
    apply(builder, [items, other, ...transaction(0x2000, [insert(items, { id: '1', note: null, body: null })])]);
    const first = builder.take()!;
    assert.deepEqual(
      first.lines.map((line) => (line.type === 'relation' ? `relation ${line.table}` : line.type)),
      ['relation items', 'transaction'],
    );
    apply(builder, transaction(0x3000, [insert(other, { id: '7' }), insert(items, { id: '2', note: null, body: null })]));
    const second = builder.take()!;
    assert.deepEqual(
      second.lines.map((line) => (line.type === 'relation' ? `relation ${line.table} ${line.schemaChange}` : line.type)),
      ['relation other false', 'relation items false', 'transaction'],
    );
    assert.equal(second.startLsn, first.endLsn, 'segments chain');
  });

  it('marks a changed shape: in the body after the table was touched, at the head before', () => {
    const builder = new SegmentBuilder('0/1000');
    const widened = relation(100, 'items', [
      ['id', 23, true],
      ['note', 25, false],
      ['body', 25, false],
      ['extra', 23, false],
    ]);
    apply(builder, [items, ...transaction(0x2000, [insert(items, { id: '1', note: null, body: null })])]);
    // PostgreSQL sends a relation again on every new connection: the same shape is no change.
    apply(builder, [items, ...transaction(0x2100, [insert(items, { id: '2', note: null, body: null })])]);
    apply(builder, [widened, ...transaction(0x2200, [insert(widened, { id: '3', note: null, body: null, extra: '4' })])]);
    const segment = builder.take()!;
    assert.deepEqual(
      segment.lines.map((line) => (line.type === 'relation' ? `relation ${line.columns.length} ${line.schemaChange}` : line.type)),
      ['relation 3 false', 'transaction', 'transaction', 'relation 4 true', 'transaction'],
    );
    assert.deepEqual(segment.schemaChanges, ['public.items']);

    const narrowed = relation(100, 'items', [['id', 23, true]]);
    apply(builder, [narrowed, ...transaction(0x3000, [insert(narrowed, { id: '5' })])]);
    const next = builder.take()!;
    assert.deepEqual(next.lines[0], {
      type: 'relation',
      schema: 'public',
      table: 'items',
      columns: [{ name: 'id', typeOid: 23, key: true }],
      replicaIdentity: 'default',
      schemaChange: true,
    });
    assert.deepEqual(next.schemaChanges, ['public.items']);
  });

  it('keeps a transaction under way out of the segment taken meanwhile, and skips what was stored already or changed nothing', () => {
    const builder = new SegmentBuilder('0/2000');
    // Committed before the confirmed position: the slot re-sent it after a crash.
    apply(builder, [items, ...transaction(0x1f00, [insert(items, { id: '0', note: null, body: null })])]);
    apply(builder, transaction(0x2000, [insert(items, { id: '1', note: null, body: null })]));
    apply(builder, transaction(0x2100, []));
    const open = transaction(0x2200, [insert(items, { id: '2', note: null, body: null })]);
    apply(builder, open.slice(0, 2));
    assert.equal(builder.inTransaction(), true);
    const first = builder.take()!;
    assert.deepEqual(
      transactionsOf(first).map((line) => line.lsn),
      ['0/2000'],
      'a commit exactly at the confirmed position is kept; one before it is not',
    );
    assert.equal(builder.take(), null);
    apply(builder, open.slice(2));
    const second = builder.take()!;
    assert.deepEqual(
      transactionsOf(second).map((line) => line.lsn),
      ['0/2200'],
    );
    assert.equal(second.startLsn, '0/2020');
  });

  it('keeps commit times to the microsecond', () => {
    assert.equal(commitTimeText(1_767_225_600_123_456n), '2026-01-01T00:00:00.123456Z');
    assert.equal(commitTimeText(1_767_225_600_000_007n), '2026-01-01T00:00:00.000007Z');
  });
});

describe('the slot guard rule (pure)', () => {
  const stream = { slotName: 'backstop_x', slotLimitBytes: 1000, state: 'streaming' as const, confirmedLsn: '0/10', targetName: 'app' };
  it('drops a slot past its limit, or one the server invalidated or would', () => {
    assert.deepEqual(decideSlotGuard(stream, { walStatus: 'reserved', retainedWalBytes: 1000, activePid: null }), { action: 'none' });
    const over = decideSlotGuard(stream, { walStatus: 'reserved', retainedWalBytes: 1001, activePid: 7 });
    assert.equal(over.action, 'drop');
    assert.match(
      (over as { reason: string }).reason,
      /^slot dropped: it held back 1001 B of WAL .* over the limit of 1000 B; run `backstop target update app --continuous` to start again$/,
    );
    assert.equal(decideSlotGuard(stream, { walStatus: 'unreserved', retainedWalBytes: 10, activePid: null }).action, 'drop');
    assert.equal(decideSlotGuard(stream, { walStatus: 'lost', retainedWalBytes: null, activePid: null }).action, 'drop');
  });
  it('stops a stream whose slot is gone, but not one still being set up', () => {
    assert.equal(decideSlotGuard(stream, null).action, 'stop');
    assert.deepEqual(decideSlotGuard({ ...stream, state: 'starting', confirmedLsn: null }, null), { action: 'none' });
  });
});

describe('continuous alarms (pure)', () => {
  const base: TargetAlarmFacts = {
    targetId: 't',
    targetName: 'app',
    paused: false,
    createdAt: 0,
    schedule: null,
    scheduleSince: null,
    scheduleLastSlot: null,
    maxBackupAgeMs: null,
    drillSchedule: null,
    drillSince: null,
    missedSlots: 0,
    missedAfter: null,
    missedAt: null,
    newestGoodBackupAt: null,
    lastFinishedBackup: null,
    lastFinishedDrill: null,
    newestGoodDrillAt: null,
    continuous: null,
  };
  const stream: ContinuousAlarmFacts = {
    state: 'streaming',
    stoppedReason: null,
    stoppedAt: null,
    retainedWalBytes: 10,
    measuredAt: 50_000,
    slotWarnBytes: 100,
    recoveryPoint: 40_000,
    maxRpoMs: 30_000,
  };
  const state = (continuous: ContinuousAlarmFacts | null, now: number, kind: string) =>
    assessAlarms({ ...base, continuous }, now, { graceMs: 0, slotGraceMs: 0 }).find((condition) => condition.kind === kind)!.state;

  it('rpo_exceeded once the recovery point is older than the bound, for a streaming target only', () => {
    assert.equal(state(stream, 70_000, 'rpo_exceeded'), 'off');
    assert.equal(state(stream, 70_001, 'rpo_exceeded'), 'on');
    assert.equal(state({ ...stream, state: 'starting' }, 70_001, 'rpo_exceeded'), 'off');
    assert.equal(state(null, 70_001, 'rpo_exceeded'), 'off');
  });
  it('slot_wal_warning over the warning threshold; slot_dropped with the reason once stopped', () => {
    assert.equal(state(stream, 60_000, 'slot_wal_warning'), 'off');
    assert.equal(state({ ...stream, retainedWalBytes: 101 }, 60_000, 'slot_wal_warning'), 'on');
    const stopped = { ...stream, state: 'stopped' as const, stoppedReason: 'slot dropped: it held back 2 GiB', stoppedAt: 55_000, retainedWalBytes: 101 };
    const conditions = assessAlarms({ ...base, continuous: stopped }, 60_000, { graceMs: 0, slotGraceMs: 0 });
    const dropped = conditions.find((condition) => condition.kind === 'slot_dropped')!;
    assert.equal(dropped.state, 'on');
    assert.equal(dropped.since, 55_000);
    assert.match(dropped.details.what, /stopped: slot dropped: it held back 2 GiB/);
    assert.equal(conditions.find((condition) => condition.kind === 'slot_wal_warning')!.state, 'off');
    assert.equal(state(stream, 60_000, 'slot_dropped'), 'off');
  });
});
