import { leasedStatuses } from '../core/runState.ts';
import type { Queryable } from './pool.ts';
import { assertRunId } from './runRecords.ts';

/** An entry of a run's event log (backstop.run_events), as the API and the CLI show it. */
export interface RunEventRecord {
  id: number;
  runId: string;
  at: string;
  attempt: number;
  kind: string;
  status: string | null;
  message: string | null;
  data: Record<string, unknown> | null;
}

/** Appends an event on behalf of a runner, only while it still holds the lease. */
export async function appendRunnerEvent(db: Queryable, input: { runId: string; leaseId: string; kind: string; message: string; data?: Record<string, unknown> }): Promise<boolean> {
  const { rowCount } = await db.query(
    `insert into backstop.run_events (run_id, attempt, kind, status, message, data)
     select id, attempt, $3, status, $4, $5::jsonb from backstop.runs
     where id = $1 and lease_id = $2 and status = any($6::text[])`,
    [input.runId, input.leaseId, input.kind, input.message, input.data ? JSON.stringify(input.data) : null, leasedStatuses],
  );
  return (rowCount ?? 0) > 0;
}

export async function appendRunEvent(db: Queryable, input: { runId: string; kind: string; message: string; data?: Record<string, unknown> }): Promise<void> {
  await db.query(
    `insert into backstop.run_events (run_id, attempt, kind, status, message, data)
     select id, attempt, $2, status, $3, $4::jsonb from backstop.runs where id = $1`,
    [input.runId, input.kind, input.message, input.data ? JSON.stringify(input.data) : null],
  );
}

/** A row of backstop.run_events as pg returns it (ids are bigint: text). */
export interface RunEventRow {
  id: number | string;
  run_id: string;
  at: string;
  attempt: number;
  kind: string;
  status: string | null;
  message: string | null;
  data: Record<string, unknown> | null;
}

export function runEventFromRow(row: RunEventRow): RunEventRecord {
  return {
    id: Number(row.id),
    runId: row.run_id,
    at: row.at,
    attempt: row.attempt,
    kind: row.kind,
    status: row.status,
    message: row.message,
    data: row.data,
  };
}

export async function listRunEvents(db: Queryable, runId: string, afterId = 0): Promise<RunEventRecord[]> {
  assertRunId(runId);
  const { rows } = await db.query<RunEventRow>(`select * from backstop.run_events where run_id = $1 and id > $2 order by id`, [runId, afterId]);
  return rows.map(runEventFromRow);
}
