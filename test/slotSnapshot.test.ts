import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createSlotWithSnapshot } from '../src/continuous/slotSnapshot.ts';
import { compareLsn, lsnKey, lsnToBigInt, slotNameFor } from '../src/core/changeSegment.ts';
import { adminQuery, createTestDatabase, type TestDatabase } from './support/pg.ts';

describe('a slot created with its exported snapshot', () => {
  let source: TestDatabase;

  before(async () => {
    source = await createTestDatabase();
    await adminQuery('create table items (id int primary key); insert into items select generate_series(1, 10)', [], source.url);
  });
  after(async () => {
    await adminQuery("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'backstop_test_%'", [], source.url).catch(() => {});
    await source.drop();
  });

  it('reads the database as of the consistent point: later commits are not in the snapshot', async () => {
    const slot = await createSlotWithSnapshot(source.url, 'backstop_test_snapshot', { temporary: true });
    try {
      await adminQuery('insert into items values (11)', [], source.url);
      const reader = new pg.Client({ connectionString: source.url });
      await reader.connect();
      try {
        await reader.query('begin isolation level repeatable read');
        await reader.query(`set transaction snapshot '${slot.snapshot}'`);
        const { rows } = await reader.query<{ count: string }>('select count(*) from items');
        assert.equal(rows[0]!.count, '10');
        await reader.query('commit');
      } finally {
        await reader.end();
      }
      const [current] = await adminQuery<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn', [], source.url);
      assert.ok(compareLsn(slot.consistentLsn, current!.lsn) < 0);
    } finally {
      await slot.release();
    }
    const left = await adminQuery("select 1 from pg_replication_slots where slot_name = 'backstop_test_snapshot'", [], source.url);
    assert.equal(left.length, 0, 'a temporary slot goes with its connection');
  });

  it('names slots safely and orders LSNs as numbers', () => {
    assert.match(slotNameFor('0A1B2C3D-0000-4000-8000-00000000000F'), /^backstop_[0-9a-f]{32}$/);
    assert.equal(slotNameFor('0A1B2C3D-0000-4000-8000-00000000000F', '9f8e7d6c').length, 50, 'within the 63 bytes of a slot name');
    assert.throws(() => slotNameFor('0A1B2C3D-0000-4000-8000-00000000000F', 'X; drop'), /Not a slot suffix/);
    assert.equal(compareLsn('0/FF', '1/0'), -1);
    assert.equal(lsnToBigInt('1/0'), 1n << 32n);
    assert.ok(lsnKey('0/FF') < lsnKey('1/0'));
  });
});
