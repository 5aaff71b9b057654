import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createPool, withTransaction, type Pool } from '../src/db/pool.ts';
import { connectDatabase } from '../src/pgtools/connectDatabase.ts';
import { createTestDatabase, type TestDatabase } from './support/pg.ts';

/**
 * The catalog parses int8 as numbers and timestamptz as ISO strings; a database being backed
 * up or restored into is read with node-postgres' own defaults. Both are asked on the same
 * server, in the same process, after the catalog's pool exists: parsers set on pg.types
 * instead of on the pool would leak into the second connection.
 */

const probeSql = `select 9007199254740993::int8 as big, 42::int8 as small, timestamptz '2025-01-02 03:04:05.678+00' as at`;

describe('value parsing: the catalog and the databases it backs up', () => {
  let database: TestDatabase;
  let pool: Pool;

  before(async () => {
    database = await createTestDatabase('types');
    pool = createPool(database.url);
  });

  after(async () => {
    await pool.end();
    await database.drop();
  });

  it('catalog queries read int8 as a number and timestamptz as an ISO string, on the pool and on its clients', async () => {
    const { rows } = await pool.query(probeSql);
    assert.equal(rows[0].small, 42);
    assert.equal(rows[0].at, '2025-01-02T03:04:05.678Z');
    const inTransaction = await withTransaction(pool, async (client) => (await client.query(probeSql)).rows[0]);
    assert.equal(inTransaction.small, 42);
    assert.equal(inTransaction.at, '2025-01-02T03:04:05.678Z');
  });

  it('a connection to a source or destination database keeps node-postgres defaults', async () => {
    const client = await connectDatabase(database.url);
    try {
      const { rows } = await client.query(probeSql);
      // int8 beyond 2^53 survives as text: nothing rounds a source's value.
      assert.equal(rows[0].big, '9007199254740993');
      assert.equal(rows[0].small, '42');
      assert.ok(rows[0].at instanceof Date, `timestamptz arrived as ${typeof rows[0].at}`);
      assert.equal(rows[0].at.toISOString(), '2025-01-02T03:04:05.678Z');
    } finally {
      await client.end();
    }
  });

  it('node-postgres global parsers are left as they were', () => {
    assert.equal(pg.types.getTypeParser(pg.types.builtins.INT8)('42'), '42');
    assert.ok(pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ)('2025-01-02 03:04:05+00') instanceof Date);
  });
});
