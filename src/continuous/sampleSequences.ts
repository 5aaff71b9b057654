import type { Queryable } from '../db/pool.ts';

export interface SequenceSample {
  schema: string;
  name: string;
  lastValue: string;
  isCalled: boolean;
}

/**
 * Every sequence of the source database the role may read, sampled now. pg_sequences shows
 * `last_value` null for a sequence never called (is_called false): its next value is then its
 * start, which `setval(start, false)` restores. Sequences the role may not read show null too,
 * and are left out rather than mistaken for unused ones.
 */
export async function sampleSequences(db: Queryable): Promise<SequenceSample[]> {
  const { rows } = await db.query<{ schema: string; name: string; start_value: string; last_value: string | null }>(
    `select schemaname as schema, sequencename as name, start_value::text as start_value, last_value::text as last_value
     from pg_sequences
     where has_sequence_privilege(format('%I.%I', schemaname, sequencename), 'SELECT,USAGE')
     order by schemaname, sequencename`,
  );
  return rows.map((row) =>
    row.last_value === null
      ? { schema: row.schema, name: row.name, lastValue: row.start_value, isCalled: false }
      : { schema: row.schema, name: row.name, lastValue: row.last_value, isCalled: true },
  );
}
