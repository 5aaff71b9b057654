import type { Change, RelationLine } from '../core/changeSegment.ts';
import {
  insertStatement,
  rowChangeStatement,
  truncateStatement,
  updateRowKey,
  updateRowsStatement,
  updateShape,
  type ChangeStatement,
  type DestinationTable,
} from './changeStatements.ts';
import { relationKey } from './readSegment.ts';
import { replayError } from './replayStopped.ts';

/** Rows of one statement: a few MB of values at most in one message. */
const MAX_BATCH_ROWS = 5000;

type Insert = Extract<Change, { kind: 'insert' }>;
type Update = Extract<Change, { kind: 'update' }>;

/** Consecutive changes that go as one statement. */
type Group =
  | { kind: 'insert'; table: DestinationTable; shape: string; changes: Insert[] }
  | { kind: 'update'; table: DestinationTable; shape: string; relation: RelationLine; changes: Update[]; keys: Set<string> };

/**
 * One source transaction's changes, in order, with a round trip saved where order cannot
 * matter: consecutive inserts into one table with the same columns go as one statement, and so
 * do consecutive updates of one table's rows that set the same columns, each row found by a
 * key it keeps and no row twice (updateRowsStatement). Anything else flushes the group first.
 */
export async function applyChanges(
  changes: Change[],
  relations: Map<string, RelationLine>,
  tableFor: (relation: RelationLine, where: string) => Promise<DestinationTable>,
  run: (statement: ChangeStatement, where: string) => Promise<void>,
  where: string,
): Promise<void> {
  let group: Group | null = null;
  const statementFor = (build: () => ChangeStatement | null): ChangeStatement | null => {
    try {
      return build();
    } catch (error) {
      throw replayError(where, (error as Error).message, error);
    }
  };
  const flush = async () => {
    const current = group;
    group = null;
    if (!current) return;
    const statement =
      current.kind === 'insert'
        ? statementFor(() =>
            insertStatement(
              current.table,
              current.changes.map((change) => change.new),
            ),
          )
        : current.changes.length === 1
          ? statementFor(() => rowChangeStatement(current.relation, current.table, current.changes[0]!))
          : statementFor(() => updateRowsStatement(current.relation, current.table, current.changes));
    if (statement) await run(statement, where);
  };

  for (const change of changes) {
    if (change.kind === 'truncate') {
      await flush();
      await run(truncateStatement(change), where);
      continue;
    }
    const relation = relations.get(relationKey(change.schema, change.table))!;
    const table = await tableFor(relation, where);
    const same = (kind: Group['kind'], shape: string) => {
      const current = group as Group | null;
      return current !== null && current.kind === kind && current.table === table && current.shape === shape && current.changes.length < MAX_BATCH_ROWS;
    };
    if (change.kind === 'insert') {
      const shape = Object.keys(change.new).join('\u0000');
      if (!same('insert', shape)) {
        await flush();
        group = { kind: 'insert', table, shape, changes: [] };
      }
      (group as Extract<Group, { kind: 'insert' }>).changes.push(change);
      continue;
    }
    const shape = change.kind === 'update' ? updateShape(relation, table, change) : null;
    if (change.kind === 'update' && shape !== null) {
      const key = updateRowKey(relation, change);
      const current = group as Group | null;
      if (!same('update', shape) || (current?.kind === 'update' && current.keys.has(key))) {
        await flush();
        group = { kind: 'update', table, shape, relation, changes: [], keys: new Set() };
      }
      const updates = group as Extract<Group, { kind: 'update' }>;
      updates.changes.push(change);
      updates.keys.add(key);
      continue;
    }
    await flush();
    const statement = statementFor(() => rowChangeStatement(relation, table, change));
    if (statement) await run(statement, where);
  }
  await flush();
}
