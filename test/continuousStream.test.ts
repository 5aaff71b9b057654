import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { compareLsn, type TransactionLine } from '../src/core/changeSegment.ts';
import { startStreamSupervisor } from '../src/control/streamSupervisor.ts';
import { generateIdentity, parseIdentities } from '../src/pipeline/age.ts';
import { makeContinuousTarget, readStoredSegments, slotState, uniqueTransactions } from './support/continuous.ts';
import { adminQuery, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

const log = pino({ level: 'silent' });
const config = { leaseTtlMs: 2000, reaperIntervalMs: 500, runDeadlineMs: 3_600_000 };

const schema = `
  create table parent (id serial primary key, name text not null);
  create table child (id bigserial primary key, parent_id int not null references parent (id) on delete cascade, note text, big text);
  create table journal (id bigserial primary key, op text not null, xid bigint not null default txid_current());
  create sequence counter_seq;
  create sequence unused_seq start 40;`;

/** The journal as the source committed it: one row per committed workload transaction. */
async function committedJournal(url: string): Promise<{ id: string; xid: string }[]> {
  return adminQuery<{ id: string; xid: string }>('select id::text as id, xid::text as xid from journal order by journal.id', [], url);
}

function journalOf(transaction: TransactionLine): { id: string; xid: string } | undefined {
  const insert = transaction.changes.find((change) => change.kind === 'insert' && change.table === 'journal');
  return insert?.kind === 'insert' ? { id: insert.new.id!, xid: insert.new.xid! } : undefined;
}

describe('the streamer: a slot into segments', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  const key = generateIdentity();

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('cont');
    await adminQuery(schema, [], source.url);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-cont-'));
  });
  after(async () => {
    await adminQuery("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'backstop_%' and not active", [], source.url).catch(() => {});
    await catalog.close();
    await source.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('stores every committed transaction once, in commit order, encrypted and compressed, and confirms only what is stored', { timeout: 120_000 }, async () => {
    const storeUrl = `file://${storeDir}`;
    const { target, slot } = await makeContinuousTarget(catalog.pool, {
      name: 'cont-app',
      sourceUrl: source.url,
      storeUrl,
      tables: ['parent', 'child', 'journal'],
      options: { encryptTo: [key.recipient] },
    });
    const supervisor = startStreamSupervisor({ pool: catalog.pool, log, config }, { owner: 'test-streamer', limit: 1, pollIntervalMs: 200, targetId: target.id });
    try {
      await waitFor('the streamer to hold the slot', async () => (await slotState(source.url, slot))?.active);
      const big = (await adminQuery<{ value: string }>("select string_agg(md5(i::text || random()::text), '') as value from generate_series(1, 300) i", [], source.url))[0]!.value;
      for (let index = 1; index <= 40; index++) {
        const statements = [
          'begin',
          `insert into parent (name) values ('p${index}')`,
          `insert into child (parent_id, note, big) values (currval('parent_id_seq'), 'n${index}', ${index === 3 ? `'${big}'` : 'null'})`,
          "select nextval('counter_seq')",
        ];
        if (index % 5 === 0) statements.push(`update child set note = 'updated ${index}' where parent_id = ${index - 1}`);
        if (index % 7 === 0) statements.push(`delete from child where parent_id = ${index - 2}`);
        if (index === 10) statements.push('update child set note = $$toast stays$$ where parent_id = 3');
        if (index === 20) statements.push('truncate child');
        if (index === 25) statements.push('alter table child add column extra int', 'insert into child (parent_id, extra) values (1, 7)');
        statements.push(`insert into journal (op) values ('t${index}')`, 'commit');
        await adminQuery(statements.join(';\n'), [], source.url);
        if (index === 30) await adminQuery("begin; insert into journal (op) values ('rolled back'); rollback", [], source.url);
      }
      const committed = await committedJournal(source.url);
      assert.equal(committed.length, 40);

      const segments = await waitFor(
        'every committed transaction in the store',
        async () => {
          const read = await readStoredSegments(storeUrl, target.name, slot, parseIdentities(key.identity));
          const stored = read.flatMap((segment) => segment.lines).filter((line) => line.type === 'transaction' && journalOf(line));
          return stored.length >= 40 ? read : null;
        },
        60_000,
        200,
      );
      const transactions = segments.flatMap((segment) => segment.lines.filter((line) => line.type === 'transaction'));
      assert.equal(transactions.length, uniqueTransactions(segments).length, 'no transaction stored twice');
      // Exactly the committed ones, in commit order, each the transaction that wrote it.
      const streamed = transactions.map((transaction) => ({ ...journalOf(transaction)!, streamedXid: String(transaction.xid) }));
      assert.deepEqual(
        streamed.map(({ id, xid }) => ({ id, xid })),
        committed,
      );
      for (const entry of streamed) assert.equal(entry.streamedXid, entry.xid);
      for (let index = 1; index < transactions.length; index++) assert.ok(compareLsn(transactions[index - 1]!.lsn, transactions[index]!.lsn) < 0);

      // Segments chain: each begins where the one before ended.
      for (let index = 1; index < segments.length; index++) assert.equal(segments[index]!.manifest.startLsn, segments[index - 1]!.manifest.endLsn);
      for (const segment of segments) {
        assert.equal(segment.manifest.file.encrypted, true);
        assert.equal(segment.manifest.file.compression, 'zstd');
        assert.equal(segment.manifest.transactions, segment.lines.filter((line) => line.type === 'transaction').length);
        const touched = new Set(
          segment.lines.flatMap((line) =>
            line.type === 'transaction' ? line.changes.flatMap((change) => (change.kind === 'truncate' ? change.tables.map((t) => t.table) : [change.table])) : [],
          ),
        );
        const headRelations = segment.lines
          .slice(
            0,
            segment.lines.findIndex((line) => line.type !== 'relation'),
          )
          .map((line) => line.type === 'relation' && line.table);
        assert.deepEqual(new Set(headRelations), touched, `${segment.key} starts with a relation line for each table it touches`);
        const sequences = segment.lines.at(-1)!;
        assert.equal(sequences.type, 'sequences');
      }

      const changes = transactions.flatMap((transaction) => transaction.changes);
      const toastUpdate = changes.find((change) => change.kind === 'update' && change.new.note === 'toast stays');
      assert.ok(toastUpdate?.kind === 'update');
      assert.deepEqual(toastUpdate.unchanged, ['big'], 'the unchanged TOAST column is listed, not sent');
      assert.equal('big' in toastUpdate.new, false);
      const bigInsert = changes.find((change) => change.kind === 'insert' && change.table === 'child' && change.new.big === big);
      assert.ok(bigInsert, 'values travel as text, whole');
      const deleted = changes.find((change) => change.kind === 'delete');
      assert.ok(deleted?.kind === 'delete');
      assert.deepEqual(Object.keys(deleted.old), ['id'], 'a delete carries the replica identity (the primary key)');
      assert.ok(changes.some((change) => change.kind === 'truncate' && change.tables.some((t) => t.table === 'child')));
      const schemaChange = segments.flatMap((segment) => segment.lines).find((line) => line.type === 'relation' && line.schemaChange);
      assert.ok(schemaChange?.type === 'relation' && schemaChange.table === 'child' && schemaChange.columns.some((column) => column.name === 'extra'));
      assert.ok(segments.some((segment) => segment.manifest.schemaChanges.includes('public.child')));

      const lastSequences = segments.at(-1)!.lines.at(-1)!;
      assert.ok(lastSequences.type === 'sequences');
      assert.deepEqual(
        lastSequences.sequences.find((sequence) => sequence.name === 'counter_seq'),
        { schema: 'public', name: 'counter_seq', lastValue: '40', isCalled: true },
      );
      assert.deepEqual(
        lastSequences.sequences.find((sequence) => sequence.name === 'unused_seq'),
        { schema: 'public', name: 'unused_seq', lastValue: '40', isCalled: false },
      );

      // The catalog holds each segment and the position, and the slot was told exactly that much.
      const rows = await catalog.pool.query<{ manifest_key: string }>('select manifest_key from backstop.change_segments where target_id = $1 order by end_lsn', [target.id]);
      assert.deepEqual(
        rows.rows.map((row) => row.manifest_key),
        segments.map((segment) => segment.key),
      );
      const lastEnd = segments.at(-1)!.manifest.endLsn;
      const stream = await waitFor('the position confirmed to the slot', async () => {
        const [row] = (
          await catalog.pool.query<{ confirmed: string; last_commit_at: string }>(
            'select confirmed_lsn::text as confirmed, last_commit_at from backstop.continuous_streams where target_id = $1',
            [target.id],
          )
        ).rows;
        const state = await slotState(source.url, slot);
        return row?.confirmed === lastEnd && state && compareLsn(state.confirmed, lastEnd) >= 0 ? row : null;
      });
      assert.equal(new Date(stream.last_commit_at).toISOString().slice(0, 23), segments.at(-1)!.manifest.lastCommitAt.slice(0, 23));
    } finally {
      await supervisor.stop();
    }
  });
});
