import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { bigIntToLsn, lsnToBigInt, type Change, type RelationLine, type SegmentLine } from '../src/core/changeSegment.ts';
import { BackstopError } from '../src/core/errors.ts';
import { parseRestorePoint } from '../src/core/restorePoint.ts';
import { prepareReplay } from '../src/continuous/pointInTimeReplay.ts';
import { REPLAY_BATCH, type ReplayBound } from '../src/continuous/replaySegments.ts';
import { listStoredSegments } from '../src/continuous/segmentFiles.ts';
import { generateIdentity, parseIdentities } from '../src/pipeline/age.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { adminQuery, createTestDatabase, type TestDatabase } from './support/pg.ts';
import { testTargetId, writeSegment } from './support/segments.ts';

const SLOT = 'backstop_test';
const BASE = '0/1000';

const column = (name: string, key = false) => ({ name, typeOid: 25, key });
const relations: Record<string, RelationLine> = {
  parent: { type: 'relation', schema: 'public', table: 'parent', columns: [column('id', true), column('name')], replicaIdentity: 'default', schemaChange: false },
  child: { type: 'relation', schema: 'public', table: 'child', columns: [column('id', true), column('parent_id')], replicaIdentity: 'default', schemaChange: false },
  loose: { type: 'relation', schema: 'public', table: 'loose', columns: [column('label'), column('doc')], replicaIdentity: 'full', schemaChange: false },
  typed: {
    type: 'relation',
    schema: 'public',
    table: 'typed',
    columns: ['j', 'jb', 'b', 'arr', 'tags', 'ts', 'n', 'amount', 'big'].map((name) => column(name)).concat([column('id', true)]),
    replicaIdentity: 'default',
    schemaChange: false,
  },
  'odd "name"': { type: 'relation', schema: 'public', table: 'odd "name"', columns: [column('Key; drop', true), column('v')], replicaIdentity: 'default', schemaChange: false },
};

let clock = Date.parse('2026-12-01T10:00:00Z');
function tx(lsn: string, changes: Change[], committedAt?: string): SegmentLine {
  clock += 1000;
  return { type: 'transaction', xid: Number(lsnToBigInt(lsn) % 100000n), lsn, endLsn: lsn, committedAt: committedAt ?? new Date(clock).toISOString(), changes };
}
const ins = (table: string, row: Record<string, string | null>): Change => ({ kind: 'insert', schema: 'public', table, new: row });
const upd = (table: string, row: Record<string, string | null>, old: Record<string, string | null> | null = null, unchanged: string[] = []): Change => ({
  kind: 'update',
  schema: 'public',
  table,
  old,
  new: row,
  unchanged,
});
const del = (table: string, old: Record<string, string | null>): Change => ({ kind: 'delete', schema: 'public', table, old });
const sequences = (lastValue: string): SegmentLine => ({ type: 'sequences', sequences: [{ schema: 'public', name: 'parent_seq', lastValue, isCalled: true }] });

describe('point-in-time replay of change segments onto a restored base', () => {
  let root: string;
  let store: Store;
  let database: TestDatabase;
  let target: string;
  const targetId = testTargetId();
  let counter = 0;

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-pitr-'));
    store = await openStore(`file://${root}`);
  });
  after(async () => {
    await store.close();
    await fs.rm(root, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await database?.drop();
    target = `t${++counter}`;
    // The base backup, as restored: the tables, a trigger that must not fire, a sequence.
    database = await createTestDatabase('pitr');
    await adminQuery(
      `create sequence parent_seq;
       select setval('parent_seq', 10);
       create table parent (id int primary key, name text);
       create table child (id int primary key, parent_id int not null references parent (id));
       create table loose (label text, doc json);
       alter table loose replica identity full;
       create table typed (id int generated always as identity primary key, j json, jb jsonb, b bytea, arr int[], tags text[], ts timestamptz, n text, amount numeric(12,4), big text);
       create table "odd ""name""" ("Key; drop" text primary key, v text);
       insert into parent values (1, 'base');
       create function refuse() returns trigger language plpgsql as $$ begin raise exception 'a trigger fired during replay'; end $$;
       create trigger refuse_parent before insert or update or delete on parent for each row execute function refuse();
       insert into loose values ('same', '{"k": 1}'), ('same', '{"k": 1}');`,
      [],
      database.url,
    );
  });
  after(async () => {
    await database?.drop();
  });

  async function replay(point: string, encryptionIdentity?: string, options: { bound?: ReplayBound; signal?: AbortSignal; onTransaction?: (applied: number) => void } = {}) {
    const segments = (await listStoredSegments(store, target, targetId)).sort((a, b) => (a.manifestKey < b.manifestKey ? -1 : 1));
    const parsed = parseRestorePoint(point);
    const stop =
      parsed.kind === 'latest' ? { kind: 'end' as const } : parsed.kind === 'lsn' ? { kind: 'lsn' as const, lsn: parsed.lsn } : { kind: 'time' as const, micros: parsed.micros };
    const prepared = await prepareReplay({
      store,
      segments,
      baseLsn: lsnToBigInt(BASE),
      stop,
      identities: encryptionIdentity ? parseIdentities(encryptionIdentity) : undefined,
      signal: new AbortController().signal,
    });
    try {
      const result = await prepared.apply({ databaseUrl: database.url, signal: options.signal ?? new AbortController().signal, ...options });
      return { cut: prepared.cut, result };
    } finally {
      await prepared.dispose();
    }
  }
  const rows = (sql: string) => adminQuery(sql, [], database.url);
  /** A segment of this test's target and slot. */
  const write = (input: Omit<Parameters<typeof writeSegment>[1], 'target' | 'targetId' | 'slot'>) => writeSegment(store, { target, targetId, slot: SLOT, ...input });

  it('applies inserts, updates with a key change, deletes and truncates in commit order, with replica triggers and foreign keys', async () => {
    await write({
      startLsn: BASE,
      endLsn: '0/4000',
      lines: [
        relations.parent!,
        relations.child!,
        // The child arrives before its parent within the transaction: FK checks are a replica's (off).
        tx('0/2000', [ins('child', { id: '1', parent_id: '2' }), ins('parent', { id: '2', name: 'two' }), ins('parent', { id: '3', name: 'three' })]),
        tx('0/3000', [upd('parent', { id: '20', name: 'twenty' }, { id: '2' }), upd('parent', { id: '1', name: 'renamed' }), del('parent', { id: '3' })]),
        tx('0/4000', [{ kind: 'truncate', tables: [{ schema: 'public', table: 'child' }], cascade: false, restartIdentity: false }]),
        sequences('42'),
      ],
    });
    const { cut, result } = await replay('latest');
    assert.equal(result.transactions, 3);
    assert.equal(cut.lsn, lsnToBigInt('0/4000'));
    assert.deepEqual(await rows('select id, name from parent order by id'), [
      { id: 1, name: 'renamed' },
      { id: 20, name: 'twenty' },
    ]);
    assert.deepEqual(await rows('select * from child'), []);
    assert.deepEqual(await rows('select last_value::int, is_called from parent_seq'), [{ last_value: 42, is_called: true }]);
  });

  it('round-trips json, jsonb, bytea, arrays, timestamptz, numeric and NULL, keeps unchanged TOAST values, and quotes identifiers', async () => {
    const big = 'x'.repeat(100_000);
    const values = {
      id: '7',
      j: '{"b": [1, 2],   "a": "spaced"}',
      jb: '{"nested": {"z": null}}',
      b: '\\x00ff10',
      arr: '{1,NULL,3}',
      tags: '{"a,b","c\\"d",NULL}',
      ts: '2026-01-02 03:04:05.123456+00',
      n: null,
      amount: '12.3400',
      big,
    };
    await write({
      startLsn: BASE,
      endLsn: '0/3000',
      lines: [
        relations.typed!,
        relations['odd "name"']!,
        tx('0/2000', [ins('typed', values), ins('odd "name"', { 'Key; drop': 'k', v: 'v1' })]),
        tx('0/3000', [upd('typed', { id: '7', j: '[]', n: 'now set' }, null, ['big']), upd('odd "name"', { 'Key; drop': 'k', v: 'v2' })]),
        sequences('1'),
      ],
    });
    await replay('latest');
    const [row] = await rows(
      "select j::text, jb::text, encode(b, 'hex') as b, arr::text, tags::text, to_char(ts at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as ts, n, amount::text, length(big) as big from typed",
    );
    assert.deepEqual(row, {
      j: '[]',
      jb: '{"nested": {"z": null}}',
      b: '00ff10',
      arr: '{1,NULL,3}',
      tags: '{"a,b","c\\"d",NULL}',
      ts: '2026-01-02 03:04:05.123456',
      n: 'now set',
      amount: '12.3400',
      big: 100_000,
    });
    assert.deepEqual(await rows('select * from "odd ""name"""'), [{ 'Key; drop': 'k', v: 'v2' }]);
    // The sample (1) is below the base's value (10): a sequence never goes back.
    assert.deepEqual(await rows('select last_value::int from parent_seq'), [{ last_value: 10 }]);
  });

  it('finds rows of a REPLICA IDENTITY FULL table by their whole old row, one at a time, json included', async () => {
    await write({
      startLsn: BASE,
      endLsn: '0/3000',
      lines: [
        relations.loose!,
        tx('0/2000', [upd('loose', { label: 'changed', doc: '{"k": 2}' }, { label: 'same', doc: '{"k": 1}' })]),
        tx('0/3000', [del('loose', { label: 'same', doc: '{"k": 1}' }), ins('loose', { label: null, doc: null }), del('loose', { label: null, doc: null })]),
        sequences('1'),
      ],
    });
    await replay('latest');
    assert.deepEqual(await rows('select label, doc::text from loose'), [{ label: 'changed', doc: '{"k": 2}' }]);
  });

  it('applies a transaction repeated by overlapping segments once, and stops in the middle of a segment by LSN or by time', async () => {
    const times = ['2026-12-01T11:00:00.000100Z', '2026-12-01T11:00:00.000200Z', '2026-12-01T11:00:00.000300Z', '2026-12-01T11:00:00.000400Z'];
    await write({
      startLsn: BASE,
      endLsn: '0/3000',
      lines: [relations.parent!, tx('0/2000', [ins('parent', { id: '2', name: 'a' })], times[0]), tx('0/3000', [ins('parent', { id: '3', name: 'b' })], times[1]), sequences('3')],
    });
    // A second streamer generation re-sent 0/3000 after a crash before its confirmation.
    await write({
      generation: 2,
      startLsn: '0/2000',
      endLsn: '0/5000',
      lines: [
        relations.parent!,
        tx('0/3000', [ins('parent', { id: '3', name: 'b' })], times[1]),
        tx('0/4000', [ins('parent', { id: '4', name: 'c' })], times[2]),
        tx('0/5000', [ins('parent', { id: '5', name: 'd' })], times[3]),
        sequences('5'),
      ],
    });
    const ids = async () => (await rows('select id from parent order by id')).map((row) => row.id);
    const latest = await replay('latest');
    assert.equal(latest.result.transactions, 4);
    assert.deepEqual(await ids(), [1, 2, 3, 4, 5]);

    await adminQuery('alter table parent disable trigger refuse_parent; delete from parent where id > 1', [], database.url);
    const byLsn = await replay('0/4FFF');
    assert.equal(byLsn.result.transactions, 3);
    assert.deepEqual(await ids(), [1, 2, 3, 4]);

    await adminQuery('delete from parent where id > 1', [], database.url);
    // Between the second and third commit, to the microsecond.
    const byTime = await replay('2026-12-01T11:00:00.000299Z');
    assert.equal(byTime.cut.lsn, lsnToBigInt('0/3000'));
    assert.deepEqual(await ids(), [1, 2, 3]);
  });

  it('refuses a damaged segment and a segment with a bad line before touching the destination, naming it', async () => {
    const written = await write({
      startLsn: BASE,
      endLsn: '0/2000',
      lines: [relations.parent!, tx('0/2000', [ins('parent', { id: '2', name: 'a' })]), sequences('3')],
    });
    const file = path.join(root, written.dataKey);
    const bytes = await fs.readFile(file);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 5) ^ 0xff, bytes.length - 5);
    await fs.writeFile(file, bytes);
    await assert.rejects(replay('latest'), (error: BackstopError) => {
      assert.equal(error.code, 'ARTIFACT_CORRUPT');
      assert.ok(error.message.includes(written.dataKey), error.message);
      assert.match(error.message, /SHA-256/);
      return true;
    });

    await write({
      startLsn: BASE,
      endLsn: '0/2000',
      lines: [relations.parent!, '{"type":"transaction","xid":1,"lsn":"0/2000"}', sequences('3')],
      manifest: { transactions: 1 },
    });
    await assert.rejects(replay('latest'), (error: BackstopError) => {
      assert.equal(error.code, 'ARTIFACT_CORRUPT');
      assert.match(error.message, /jsonl\.zst line 2: not a segment line/);
      return true;
    });
    assert.deepEqual(await rows('select id from parent'), [{ id: 1 }]);
  });

  it('stops at a row the destination does not hold, naming the segment and transaction, and within the first batch commits nothing of the replay', async () => {
    const written = await write({
      startLsn: BASE,
      endLsn: '0/3000',
      lines: [relations.parent!, tx('0/2000', [ins('parent', { id: '2', name: 'kept?' })]), tx('0/3000', [upd('parent', { id: '99', name: 'nowhere' })]), sequences('3')],
    });
    await assert.rejects(replay('latest'), (error: BackstopError) => {
      assert.equal(error.code, 'RESTORE_FAILED');
      assert.ok(error.message.includes(`${written.dataKey}, transaction`), error.message);
      assert.match(error.message, /at 0\/3000: update .* touched 0 row\(s\) where the source touched 1/);
      assert.match(error.message, /Nothing of the replay was committed: the destination holds the base backup alone \(LSN 0\/1000\), NOT the point requested/);
      return true;
    });
    assert.deepEqual(await rows('select id from parent'), [{ id: 1 }]);
  });

  it('sends updates of distinct rows of one table as one statement, in order where a row repeats or a key changes', async () => {
    const typed = (id: string, amount: string) => ({ id, jb: `{"n": ${id}}`, arr: `{${id},NULL}`, amount, n: null, j: null, b: null, tags: null, ts: null, big: 'x'.repeat(3000) });
    await write({
      startLsn: BASE,
      endLsn: '0/3000',
      lines: [
        relations.parent!,
        relations.typed!,
        tx('0/2000', [...['2', '3', '4', '5', '6'].map((id) => ins('parent', { id, name: 'new' })), ins('typed', typed('7', '1')), ins('typed', typed('8', '2'))]),
        tx('0/3000', [
          // One statement: five rows, each by its key.
          ...['2', '3', '4', '5', '6'].map((id) => upd('parent', { id, name: `x${id}` })),
          // Row 3 again: after the five, in a statement of its own with row 4.
          upd('parent', { id: '3', name: 'again' }),
          upd('parent', { id: '4', name: 'y' }),
          // A key change, then the new key.
          upd('parent', { id: '60', name: 'moved' }, { id: '6' }),
          upd('parent', { id: '60', name: 'z' }),
          // Typed values cast by the destination's types; the identity key is matched, never set; TOAST kept.
          upd('typed', { id: '7', jb: '{"n": 70}', arr: '{70}', amount: '70.5', n: 'seven' }, null, ['big']),
          upd('typed', { id: '8', jb: '{"n": 80}', arr: '{}', amount: '80.25', n: null }, null, ['big']),
        ]),
        sequences('1'),
      ],
    });
    const { result } = await replay('latest');
    // Two inserts, then the updates as five statements where one each would be eleven.
    assert.equal(result.changes, 18);
    assert.equal(result.statements, 7);
    assert.deepEqual(await rows('select id, name from parent order by id'), [
      { id: 1, name: 'base' },
      { id: 2, name: 'x2' },
      { id: 3, name: 'again' },
      { id: 4, name: 'y' },
      { id: 5, name: 'x5' },
      { id: 60, name: 'z' },
    ]);
    assert.deepEqual(await rows('select id, jb::text, arr::text, amount::text, n, length(big) as big from typed order by id'), [
      { id: 7, jb: '{"n": 70}', arr: '{70}', amount: '70.5000', n: 'seven', big: 3000 },
      { id: 8, jb: '{"n": 80}', arr: '{}', amount: '80.2500', n: null, big: 3000 },
    ]);
  });

  it('stops at a row missing among updates sent as one statement, counting the rows it touched', async () => {
    await write({
      startLsn: BASE,
      endLsn: '0/2000',
      lines: [relations.parent!, tx('0/2000', [upd('parent', { id: '1', name: 'found' }), upd('parent', { id: '99', name: 'nowhere' })]), sequences('1')],
    });
    await assert.rejects(replay('latest'), (error: BackstopError) => {
      assert.equal(error.code, 'RESTORE_FAILED');
      assert.match(error.message, /at 0\/2000: update .* touched 1 row\(s\) where the source touched 2/);
      return true;
    });
    assert.deepEqual(await rows('select id, name from parent'), [{ id: 1, name: 'base' }]);
  });

  it('sends updates one at a time where no unique index of the destination holds their key', async () => {
    // Two rows with the key the stream names, and none with the other: one statement for both
    // updates would touch two rows, as many as the source did, and hide the divergence.
    await adminQuery(`create table plain (k int, v text); insert into plain values (1, 'a'), (1, 'a')`, [], database.url);
    const plain: RelationLine = { type: 'relation', schema: 'public', table: 'plain', columns: [column('k', true), column('v')], replicaIdentity: 'default', schemaChange: false };
    await write({
      startLsn: BASE,
      endLsn: '0/2000',
      lines: [plain, tx('0/2000', [upd('plain', { k: '1', v: 'b' }), upd('plain', { k: '2', v: 'c' })]), sequences('1')],
    });
    await assert.rejects(replay('latest'), (error: BackstopError) => {
      assert.match(error.message, /at 0\/2000: update .* touched 2 row\(s\) where the source touched 1/);
      return true;
    });
  });

  it('replays a row updated many thousands of times in bounded transactions, each with replica triggers, to the source state', async () => {
    // A counter: the one row of "parent" updated by every transaction, as pgbench's branches
    // are. The trigger on parent refuses every change: a batch without the replica role fails.
    const total = 6000;
    const perSegment = 2000;
    let lsn = lsnToBigInt(BASE);
    for (let start = 0; start < total; start += perSegment) {
      const lines: SegmentLine[] = [relations.parent!, relations.child!];
      const startLsn = bigIntToLsn(lsn);
      for (let i = start + 1; i <= start + perSegment; i++) {
        lsn += 0x100n;
        const changes = [upd('parent', { id: '1', name: String(i) })];
        // A child now and then, with no parent row: foreign keys are a replica's (off) in every batch.
        if (i % 1000 === 0) changes.push(ins('child', { id: String(i), parent_id: String(-i) }));
        lines.push(tx(bigIntToLsn(lsn), changes));
      }
      lines.push(sequences('1'));
      await write({ startLsn, endLsn: bigIntToLsn(lsn), lines });
    }
    const { result } = await replay('latest');
    assert.equal(result.transactions, total);
    assert.equal(result.batches, Math.ceil(total / REPLAY_BATCH.transactions));
    assert.deepEqual(await rows('select id, name from parent'), [{ id: 1, name: String(total) }]);
    assert.deepEqual(
      (await rows('select id from child order by id')).map((row) => row.id),
      [1000, 2000, 3000, 4000, 5000, 6000],
    );
  });

  /** Four transactions, two changing two tables; the fourth updates a parent the destination lacks. */
  async function writeStoppingMidway() {
    return write({
      startLsn: BASE,
      endLsn: '0/5000',
      lines: [
        relations.parent!,
        relations.child!,
        tx('0/2000', [ins('parent', { id: '2', name: 'a' })], '2026-12-01T12:00:00.000001Z'),
        tx('0/3000', [ins('parent', { id: '3', name: 'b' }), ins('child', { id: '3', parent_id: '3' })], '2026-12-01T12:00:00.000002Z'),
        tx('0/4000', [ins('parent', { id: '4', name: 'c' }), ins('child', { id: '4', parent_id: '4' })], '2026-12-01T12:00:00.000003Z'),
        tx('0/5000', [ins('child', { id: '5', parent_id: '1' }), upd('parent', { id: '99', name: 'nowhere' })], '2026-12-01T12:00:00.000004Z'),
        sequences('3'),
      ],
    });
  }
  const held = async () => ({
    parents: (await rows('select id from parent order by id')).map((row) => row.id),
    children: (await rows('select id from child order by id')).map((row) => row.id),
  });

  it('stops midway at its last committed batch of whole transactions, and names the LSN and time it reached', async () => {
    await writeStoppingMidway();
    // Batches of two: 0/2000 and 0/3000 are committed; 0/4000 and the failing 0/5000 are not.
    await assert.rejects(replay('latest', undefined, { bound: { transactions: 2, changes: 1000 } }), (error: BackstopError) => {
      assert.equal(error.code, 'RESTORE_FAILED');
      assert.match(error.message, /at 0\/5000: update .* touched 0 row\(s\)/);
      assert.match(
        error.message,
        /the base backup and the first 2 replayed transaction\(s\), committed in 1 batch\(es\): it is at LSN 0\/3000, committed at 2026-12-01T12:00:00.000002Z, NOT the point requested\. Drop the destination and restore again/,
      );
      return true;
    });
    // 0/3000 changed two tables and is there whole; 0/4000 changed two and is not there at all.
    assert.deepEqual(await held(), { parents: [1, 2, 3], children: [3] });
    assert.deepEqual(await rows(`select last_value::int from parent_seq`), [{ last_value: 10 }]);
  });

  it('cancelled midway, keeps its committed batches and says where they leave the destination', async () => {
    await writeStoppingMidway();
    const controller = new AbortController();
    await assert.rejects(
      replay('latest', undefined, {
        bound: { transactions: 2, changes: 1000 },
        signal: controller.signal,
        // Cancelled after the third transaction: in the second batch, not yet committed.
        onTransaction: (applied) => {
          if (applied === 3) controller.abort(new BackstopError('CANCELLED', 'Restore cancelled by a signal.'));
        },
      }),
      (error: BackstopError) => {
        assert.equal(error.code, 'CANCELLED');
        assert.match(
          error.message,
          /^Restore cancelled by a signal\. The destination holds the base backup and the first 2 replayed transaction\(s\), committed in 1 batch\(es\): it is at LSN 0\/3000/,
        );
        return true;
      },
    );
    assert.deepEqual(await held(), { parents: [1, 2, 3], children: [3] });
  });

  it('refuses, before anything is restored, a destination role that may not set session_replication_role', async () => {
    await write({
      startLsn: BASE,
      endLsn: '0/2000',
      lines: [relations.parent!, tx('0/2000', [ins('parent', { id: '2', name: 'a' })]), sequences('3')],
    });
    const role = `pitr_plain_${counter}`;
    await adminQuery(`create role ${role} login password 'plain'`, [], database.url);
    const url = new URL(database.url);
    url.username = role;
    url.password = 'plain';
    const prepared = await prepareReplay({
      store,
      segments: await listStoredSegments(store, target, targetId),
      baseLsn: lsnToBigInt(BASE),
      stop: { kind: 'end' },
      signal: new AbortController().signal,
    });
    try {
      await assert.rejects(prepared.check(url.toString()), (error: BackstopError) => {
        assert.equal(error.code, 'RESTORE_FAILED');
        assert.match(error.message, /GRANT SET ON PARAMETER session_replication_role/);
        return true;
      });
      await adminQuery(`grant set on parameter session_replication_role to ${role}`, [], database.url);
      await prepared.check(url.toString());
    } finally {
      await prepared.dispose();
      await adminQuery(`revoke all on parameter session_replication_role from ${role}; drop role ${role}`, [], database.url);
    }
  });

  it('decrypts an encrypted segment with the identity given', async () => {
    const { identity, recipient } = generateIdentity();
    await write({
      startLsn: BASE,
      endLsn: '0/2000',
      encryptTo: [recipient],
      lines: [relations.parent!, tx('0/2000', [ins('parent', { id: '2', name: 'secret' })]), sequences('3')],
    });
    await assert.rejects(replay('latest'), /--identity/);
    await replay('latest', identity);
    assert.deepEqual(await rows('select name from parent where id = 2'), [{ name: 'secret' }]);
  });
});
