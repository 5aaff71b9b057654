import type { Queryable } from './pool.ts';
import { runEventFromRow, type RunEventRecord, type RunEventRow } from './runEvents.ts';

/** An event of any run, with what a live list of runs needs to place it. */
export interface FeedEvent extends RunEventRecord {
  targetName: string;
  runKind: 'backup' | 'verify';
  /** Whether the event was recorded more than `settledMs` ago by the database clock. */
  settled: boolean;
}

/**
 * Events of every run after `afterId`, in id order. `settled` tells the feed whether a gap
 * before this event can still be filled (see runEventStream.ts).
 */
export async function listEventsAfter(db: Queryable, afterId: number, limit: number, settledMs: number): Promise<FeedEvent[]> {
  const { rows } = await db.query<RunEventRow & { target_name: string; run_kind: 'backup' | 'verify'; settled: boolean }>(
    `select e.*, t.name as target_name, r.kind as run_kind, e.at < now() - $3 * interval '1 millisecond' as settled
     from backstop.run_events e join backstop.runs r on r.id = e.run_id join backstop.targets t on t.id = r.target_id
     where e.id > $1
     order by e.id
     limit $2`,
    [afterId, limit, settledMs],
  );
  return rows.map((row) => ({ ...runEventFromRow(row), targetName: row.target_name, runKind: row.run_kind, settled: row.settled }));
}

/** The id of the newest event (0 when there is none): where a feed opened "from now" starts. */
export async function latestEventId(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ id: number | null }>('select max(id) as id from backstop.run_events');
  return Number(rows[0]?.id ?? 0);
}
