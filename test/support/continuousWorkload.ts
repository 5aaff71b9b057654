import assert from 'node:assert/strict';
import pg from 'pg';
import { compareLsn, type TransactionLine } from '../../src/core/changeSegment.ts';
import { tableFingerprints } from '../../bench/chaos/fingerprints.ts';
import { runCli } from './cli.ts';
import { readStoredSegments, uniqueTransactions } from './continuous.ts';
import { adminQuery, createTestDatabase, type TestDatabase } from './pg.ts';
import { waitFor } from './wait.ts';

/**
 * A workload on one connection (so that commit order is journal order) until `stop`. A lost
 * connection (the source restarting) is opened again; whether the transaction in flight
 * committed is the source's journal's to say, not the workload's.
 */
export function startWorkload(url: string) {
  let stopping = false;
  let attempted = 0;
  let failures = 0;
  const run = async (client: pg.Client) => {
    while (!stopping) {
      attempted += 1;
      await client.query(
        `begin;
         insert into parent (name) values ('p${attempted}');
         insert into child (parent_id, note) values (currval('parent_id_seq'), 'c${attempted}');
         ${attempted % 3 === 0 ? `update child set note = 'u' where parent_id = ${attempted - 1};` : ''}
         ${attempted % 4 === 0 ? `delete from child where parent_id = ${attempted - 2};` : ''}
         select pg_sleep(0.005), nextval('counter_seq');
         insert into journal (op) values ('t${attempted}');
         commit`,
      );
    }
  };
  const done = (async () => {
    while (!stopping) {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
      client.on('error', () => {});
      try {
        await client.connect();
        await run(client);
      } catch {
        failures += 1;
        // The source is down: the next connection attempt fails fast until it is back.
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        await client.end().catch(() => {});
      }
    }
  })();
  return {
    /** Transactions begun so far (each committed unless the connection broke under it). */
    committed: () => attempted - failures,
    failures: () => failures,
    stop: async () => {
      stopping = true;
      await done;
    },
  };
}

/** The workload's tables: two with a foreign key between them, the journal (one row per committed transaction) and a sequence. */
export async function createWorkloadTables(url: string): Promise<void> {
  await adminQuery(
    `create table parent (id serial primary key, name text not null);
     create table child (id bigserial primary key, parent_id int not null references parent (id) on delete cascade, note text);
     create table journal (id bigserial primary key, op text not null);
     create sequence counter_seq;`,
    [],
    url,
  );
}

export async function createWorkloadDatabase(serverUrl?: string): Promise<TestDatabase> {
  const database = await createTestDatabase('crash', undefined, serverUrl);
  await createWorkloadTables(database.url);
  return database;
}

export const workloadTables = ['parent', 'child', 'journal'];

export function journalId(transaction: TransactionLine): string | undefined {
  const insert = transaction.changes.find((change) => change.kind === 'insert' && change.table === 'journal');
  return insert?.kind === 'insert' ? insert.new.id! : undefined;
}

/**
 * Waits until the store holds as many distinct transactions as the source's journal has rows,
 * then asserts that, deduplicated by commit LSN, they are exactly the committed ones, in commit order.
 */
export async function expectEveryCommitStored(sourceUrl: string, storeUrl: string, targetName: string, slot: string) {
  const committed = (await adminQuery<{ id: string }>('select id::text as id from journal order by journal.id', [], sourceUrl)).map((row) => row.id);
  const segments = await waitFor(
    'every committed transaction in the store',
    async () => {
      const read = await readStoredSegments(storeUrl, targetName, slot);
      return uniqueTransactions(read).filter(journalId).length >= committed.length ? read : null;
    },
    90_000,
    250,
  );
  const unique = uniqueTransactions(segments);
  assert.deepEqual(unique.map(journalId), committed, 'deduplicated by commit LSN: each committed transaction once, in commit order, none missing');
  return { segments, unique, committed };
}

/**
 * What the slot was told against what the catalog had recorded: `slotConfirmed` read from the
 * source, then `recorded` (the stream's confirmed_lsn, written with each segment's row) read
 * from the catalog after it, or the position recorded before a catalog outage.
 */
export interface ConfirmSample {
  slotConfirmed: string;
  recorded: string;
}

/**
 * The slot is never told of a transaction that is not recorded: every transaction whose commit
 * lies before a confirmed position ends at or before what the catalog had recorded by then.
 */
export function expectConfirmsRecorded(samples: ConfirmSample[], transactions: TransactionLine[]): void {
  assert.ok(samples.length > 0, 'the slot was sampled');
  for (const sample of samples) {
    for (const transaction of transactions) {
      if (compareLsn(transaction.lsn, sample.slotConfirmed) >= 0) break;
      assert.ok(
        compareLsn(transaction.endLsn, sample.recorded) <= 0,
        `the slot was confirmed to ${sample.slotConfirmed} while the transaction at ${transaction.lsn} (journal ${journalId(transaction)}) was recorded only up to ${sample.recorded}`,
      );
    }
  }
}

/**
 * A base backup of the target now, by the CLI (queued, claimed and run in one command), taken
 * before a test's faults: restores later replay the archive from it, across all of them.
 */
export async function takeBaseBackup(sourceUrl: string, targetName: string, env: Record<string, string>): Promise<string> {
  const result = await runCli(['backup', sourceUrl, '--target', targetName, '--json'], env);
  assert.equal(result.code, 0, result.stderr);
  const run = JSON.parse(result.stdout) as { id: string; status: string };
  assert.equal(run.status, 'succeeded', result.stdout);
  return run.id;
}

/**
 * Restores the target to `latest` (every stored commit) into a new database by the CLI and
 * compares every table with the source's, row by row: a transaction missing from the archive
 * leaves rows out, one replayed twice fails on its key. The workload's sequence is at least
 * where the source's is. Call once the workload has stopped and every commit is stored.
 */
export async function expectLatestRestoreEqualsSource(sourceUrl: string, targetName: string, env: Record<string, string>): Promise<void> {
  const restored = await createTestDatabase('faultrestored');
  try {
    const result = await runCli(['restore', targetName, '--at', 'latest', '--to', restored.url, '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await tableFingerprints(restored.url), await tableFingerprints(sourceUrl), 'the restore to latest holds exactly what the source holds');
    const counter = async (url: string) => BigInt((await adminQuery<{ value: string }>('select last_value::text as value from counter_seq', [], url))[0]!.value);
    assert.ok((await counter(restored.url)) >= (await counter(sourceUrl)), 'the sequence is at least where the source left it');
  } finally {
    await restored.drop();
  }
}
