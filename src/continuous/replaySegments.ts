import { createHash } from 'node:crypto';
import type pg from 'pg';
import { lsnToBigInt, type Change, type RelationLine } from '../core/changeSegment.ts';
import { BackstopError } from '../core/errors.ts';
import { pgErrorCode } from '../core/pgErrors.ts';
import { applyChanges } from './applyChanges.ts';
import type { ChangeStatement, DestinationTable } from './changeStatements.ts';
import { relationKey, segmentLines, type LoadedSegment } from './readSegment.ts';
import { replayError, replayStopped, type ReplayReached } from './replayStopped.ts';

export interface ReplayResult {
  transactions: number;
  changes: number;
  /** Sequences moved forward to the segment's sample (the others were at least as far already). */
  sequencesSet: number;
  /** Sequences the segment sampled that the destination does not have. */
  sequencesMissing: string[];
  statements: number;
  /**
   * Per table (`schema.table`), rows inserted and deleted by the replay since its last
   * truncate (if any): with the base's row counts, what each table must hold afterwards.
   */
  rowChanges: Record<string, { truncated: boolean; inserted: number; deleted: number }>;
  /** Database transactions the replay committed (each holds whole source transactions). */
  batches: number;
}

/** When a batch is full: the next source transaction starts a new database transaction. */
export interface ReplayBound {
  transactions: number;
  changes: number;
}

/**
 * Chosen by measurement on pgbench's TPC-B-like transactions at scale 1, where every source
 * transaction updates the one branch row: within one database transaction every version of
 * such a row stays (pruning cannot remove what a running transaction made) and each update
 * walks them all. 20,000 such transactions replayed at ~750 per second in one transaction and
 * at 2,500–4,000 per second in batches of 50 to 2,000 (no difference above the noise there);
 * 200 keeps a hot row's chain short, and an asynchronous commit every 200 costs nothing
 * measurable. The change bound keeps large transactions from piling up in one batch.
 */
export const REPLAY_BATCH: ReplayBound = { transactions: 200, changes: 10_000 };

async function destinationTable(client: pg.ClientBase, schema: string, table: string): Promise<DestinationTable | null> {
  const qualified = `${client.escapeIdentifier(schema)}.${client.escapeIdentifier(table)}`;
  const { rows } = await client.query<{ name: string; type: string; identity: string }>(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attidentity as identity
       from pg_attribute a where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped`,
    [qualified],
  );
  if (rows.length === 0) return null;
  // Unique keys the destination enforces at every statement: no partial, expression or deferred index.
  const { rows: unique } = await client.query<{ columns: string[] }>(
    `select array_agg(a.attname::text order by k.ord) as columns
       from pg_index i cross join lateral unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
       join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      where i.indrelid = to_regclass($1) and i.indisunique and i.indimmediate and i.indisvalid
        and i.indpred is null and i.indexprs is null and k.ord <= i.indnkeyatts
      group by i.indexrelid`,
    [qualified],
  );
  return {
    qualified,
    types: new Map(rows.map((row) => [row.name, row.type])),
    alwaysIdentity: new Set(rows.filter((row) => row.identity === 'a').map((row) => row.name)),
    uniqueKeys: unique.map((row) => row.columns),
  };
}

/**
 * Replays the loaded segments' transactions onto a database restored from their base: every
 * transaction with commit LSN from `baseLsn` to `cutLsn`, each once (overlapping
 * segments repeat some), in commit order, then the sequences of segment `sequencesFrom`.
 *
 * The replay commits in batches of whole source transactions (`bound`), so the destination is
 * always at one of the source's commit points. One database transaction for everything would
 * keep every version of a row updated thousands of times until its end, and each update would
 * walk them all: a replay of a counter table slows down quadratically. The batches before the
 * last commit with `synchronous_commit = off` (no WAL flush each); the last one commits
 * synchronously, which flushes every WAL record before it, the earlier batches' included.
 * A replay that stops leaves the destination at its last committed batch, and says so
 * (replayStopped).
 * `session_replication_role = replica` (set for the replay's session, so every batch has it)
 * makes triggers and foreign keys behave as on a subscriber: ordinary triggers and FK checks
 * do not fire (the source ran them already, and rows arrive in the source's commit order, not
 * in an order FKs would accept).
 */
export async function replaySegments(input: {
  client: pg.ClientBase;
  segments: LoadedSegment[];
  baseLsn: bigint;
  cutLsn: bigint;
  sequencesFrom: number | null;
  signal: AbortSignal;
  bound?: ReplayBound;
  onTransaction?: (applied: number) => void;
}): Promise<ReplayResult> {
  const { client } = input;
  const bound = input.bound ?? REPLAY_BATCH;
  const result: ReplayResult = { transactions: 0, changes: 0, sequencesSet: 0, sequencesMissing: [], statements: 0, rowChanges: {}, batches: 0 };
  const tables = new Map<string, DestinationTable>();
  const prepared = new Set<string>();

  const tableFor = async (relation: RelationLine, where: string): Promise<DestinationTable> => {
    const key = relationKey(relation.schema, relation.table);
    let table = tables.get(key);
    if (!table) {
      const found = await destinationTable(client, relation.schema, relation.table);
      if (!found)
        throw replayError(
          where,
          `the destination has no table ${key}: it was created on the source after the base backup, and logical decoding carries no DDL. Restore to a point before it, or from a base backup taken after it.`,
        );
      table = found;
      tables.set(key, table);
    }
    const missing = relation.columns.find((column) => !table.types.has(column.name));
    if (missing)
      throw replayError(
        where,
        `${key} on the destination has no column "${missing.name}": the source's table changed shape after the base backup. Restore to a point before it, or from a base backup taken after it.`,
      );
    return table;
  };

  const run = async (statement: ChangeStatement, where: string): Promise<void> => {
    // Named statements are parsed and planned once per connection: a replay repeats a few shapes many times.
    const name = `backstop_${createHash('sha1').update(statement.text).digest('hex').slice(0, 20)}`;
    let outcome: pg.QueryResult;
    try {
      outcome = await client.query({ name, text: statement.text, values: statement.values });
    } catch (error) {
      throw replayError(where, `${(error as Error).message}${pgErrorCode(error) ? ` (SQLSTATE ${pgErrorCode(error)})` : ''}`, error);
    }
    prepared.add(name);
    result.statements++;
    if (statement.rows >= 0 && outcome.rowCount !== statement.rows) {
      throw replayError(
        where,
        `${statement.text.split(' ').slice(0, 3).join(' ')}… touched ${outcome.rowCount} row(s) where the source touched ${statement.rows}: the destination does not hold what the base backup and the earlier segments say it should.`,
      );
    }
  };

  /** Where the committed batches brought the destination, and what the open batch adds. */
  const reached: ReplayReached = { transactions: 0, batches: 0, lsn: null, committedAt: null };
  const emptyBatch = () => ({ transactions: 0, changes: 0, lsn: null as bigint | null, committedAt: null as string | null });
  let batch = emptyBatch();
  const commitBatch = async () => {
    await client.query('commit');
    reached.batches++;
    reached.transactions += batch.transactions;
    if (batch.lsn !== null) Object.assign(reached, { lsn: batch.lsn, committedAt: batch.committedAt });
    batch = emptyBatch();
  };

  let inTransaction = false;
  try {
    await setReplicaRole(client, 'session');
    await client.query('set synchronous_commit = off');
    await client.query('begin');
    inTransaction = true;
    // Commits at the base's own LSN are after its snapshot (see findReplayCut).
    let applied = input.baseLsn - 1n;
    const relations = new Map<string, RelationLine>();
    for (const segment of input.segments) {
      if (applied >= input.cutLsn) break;
      for await (const line of segmentLines(segment, input.signal)) {
        if (line.type === 'relation') {
          relations.set(relationKey(line.schema, line.table), line);
          continue;
        }
        if (line.type !== 'transaction') continue;
        const lsn = lsnToBigInt(line.lsn);
        if (lsn <= applied) continue;
        if (lsn > input.cutLsn) break;
        // A full batch is committed only when another transaction follows it: the last batch
        // always holds at least one, and its synchronous commit makes the whole replay durable.
        if (batchFull(batch, bound)) {
          inTransaction = false;
          await commitBatch();
          await client.query('begin');
          inTransaction = true;
        }
        const where = `${segment.dataKey}, transaction ${line.xid} at ${line.lsn}`;
        await applyChanges(line.changes, relations, tableFor, run, where);
        countRowChanges(line.changes, result.rowChanges);
        applied = lsn;
        batch = { transactions: batch.transactions + 1, changes: batch.changes + line.changes.length, lsn, committedAt: line.committedAt };
        result.transactions++;
        result.changes += line.changes.length;
        input.onTransaction?.(result.transactions);
        input.signal.throwIfAborted();
      }
    }
    if (input.sequencesFrom !== null) await setSequences(client, input.segments[input.sequencesFrom]!, result);
    // Durable: a commit without a transaction id flushes nothing, so the last one takes one.
    await client.query('set local synchronous_commit = on');
    await client.query('select txid_current()');
    inTransaction = false;
    await commitBatch();
  } catch (error) {
    if (inTransaction) await client.query('rollback').catch(() => {});
    // The batches committed so far stay: flush them before saying where the destination is.
    if (reached.batches > 0) await flushCommitted(client).catch(() => {});
    throw replayStopped(error, reached, input.baseLsn);
  } finally {
    for (const name of prepared) await client.query(`deallocate ${client.escapeIdentifier(name)}`).catch(() => {});
    await client.query('reset session_replication_role; reset synchronous_commit').catch(() => {});
  }
  result.batches = reached.batches;
  return result;
}

/** Whether the open batch is full: a batch holds at least one source transaction. */
export function batchFull(batch: { transactions: number; changes: number }, bound: ReplayBound): boolean {
  return batch.transactions > 0 && (batch.transactions >= bound.transactions || batch.changes >= bound.changes);
}

/** A synchronous commit with a transaction id: every asynchronous commit before it is on disk after it. */
async function flushCommitted(client: pg.ClientBase): Promise<void> {
  await client.query('begin');
  try {
    await client.query('set local synchronous_commit = on');
    await client.query('select txid_current()');
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

/**
 * Replay runs as a replica's apply does: ordinary triggers and FK checks off. Setting it needs
 * a superuser, or (PostgreSQL 15 and later) a grant of that one parameter.
 */
async function setReplicaRole(client: pg.ClientBase, scope: 'session' | 'local'): Promise<void> {
  try {
    await client.query(`set ${scope} session_replication_role = replica`);
  } catch (error) {
    throw new BackstopError(
      'RESTORE_FAILED',
      `The destination refused session_replication_role = replica (${(error as Error).message}), which replay needs so that triggers and foreign keys behave as on a replica. Restore as a superuser, or on PostgreSQL 15 and later GRANT SET ON PARAMETER session_replication_role TO the restoring role.`,
      { cause: error },
    );
  }
}

/** Fails now, before a base is restored, when the destination would refuse the replay its role. */
export async function assertReplayAllowed(client: pg.ClientBase): Promise<void> {
  await client.query('begin');
  try {
    await setReplicaRole(client, 'local');
  } finally {
    await client.query('rollback').catch(() => {});
  }
}

function countRowChanges(changes: Change[], counts: ReplayResult['rowChanges']): void {
  const of = (schema: string, table: string) => (counts[relationKey(schema, table)] ??= { truncated: false, inserted: 0, deleted: 0 });
  for (const change of changes) {
    if (change.kind === 'truncate') {
      for (const table of change.tables) Object.assign(of(table.schema, table.table), { truncated: true, inserted: 0, deleted: 0 });
    } else if (change.kind === 'insert') of(change.schema, change.table).inserted++;
    else if (change.kind === 'delete') of(change.schema, change.table).deleted++;
  }
}

/**
 * Sequences are not transactional and are sampled when a segment closes, so the sample is at
 * least every value the segment's transactions used; a sequence is moved forward to it, never
 * back (the base may already be further, for a sequence the stream did not touch).
 */
async function setSequences(client: pg.ClientBase, segment: LoadedSegment, result: ReplayResult): Promise<void> {
  for (const sample of segment.sequences) {
    const qualified = `${client.escapeIdentifier(sample.schema)}.${client.escapeIdentifier(sample.name)}`;
    const { rows: found } = await client.query<{ oid: number | null }>(`select to_regclass($1)::oid as oid`, [qualified]);
    if (!found[0]?.oid) {
      result.sequencesMissing.push(`${sample.schema}.${sample.name}`);
      continue;
    }
    const { rows } = await client.query<{ last_value: string; is_called: boolean; increment: string }>(
      `select s.last_value::text, s.is_called, q.seqincrement::text as increment from ${qualified} s, pg_sequence q where q.seqrelid = $1`,
      [found[0].oid],
    );
    const current = rows[0]!;
    const increment = BigInt(current.increment);
    const next = (value: bigint, called: boolean) => (called ? value + increment : value);
    const sampled = next(BigInt(sample.lastValue), sample.isCalled);
    const base = next(BigInt(current.last_value), current.is_called);
    if (increment > 0n ? sampled <= base : sampled >= base) continue;
    await client.query('select setval($1::regclass, $2::bigint, $3)', [qualified, sample.lastValue, sample.isCalled]);
    result.sequencesSet++;
  }
}
