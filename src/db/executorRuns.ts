import { activeStatuses, exclusiveStatuses, type RunStatus } from '../core/runState.ts';
import type { Queryable } from './pool.ts';
import { runColumns, toRecord, type RunRecord, type RunRow } from './runRecords.ts';

export interface DispatchableRun {
  run: RunRecord;
  executorConfig: Record<string, unknown>;
}

/**
 * Hands queued backups of targets with an external executor to the dispatcher: they become
 * `dispatched` with a start deadline, atomically, so no two dispatchers send the same run.
 * If the dispatcher dies before GitHub hears of it, the start deadline reaps the run.
 */
export async function claimForDispatch(db: Queryable, options: { startDeadlineMs: number; limit: number; dispatcher: string }): Promise<DispatchableRun[]> {
  const { rows } = await db.query<RunRow & { executor_config: Record<string, unknown> }>(
    `with candidate as (
       select q.id from backstop.runs q join backstop.targets e on e.id = q.target_id
       where q.status = 'queued' and q.kind = 'backup' and e.executor_config is not null
         and q.cancel_requested_at is null and q.deadline_at > now()
         and (not q.exclusive or not exists (
           select 1 from backstop.runs x where x.target_id = q.target_id and x.exclusive and x.status = any($3::text[])))
         -- Of an exclusive target's queued backups only the oldest: the NOT EXISTS above sees
         -- none of this statement's own updates, so two of them would both be dispatched and
         -- the one-executing-run index would fail the whole pass, for every target, every time.
         and (not q.exclusive or not exists (
           select 1 from backstop.runs y
           where y.target_id = q.target_id and y.exclusive and y.status = 'queued' and y.kind = 'backup'
             and y.cancel_requested_at is null and y.deadline_at > now() and (y.created_at, y.id) < (q.created_at, q.id)))
       order by q.created_at
       for update of q skip locked
       limit $2
     ), dispatched as (
       update backstop.runs r set status = 'dispatched',
         start_deadline_at = least(r.deadline_at, now() + $1 * interval '1 millisecond'),
         executor = jsonb_build_object('kind', 'github', 'state', 'dispatching', 'dispatcher', $4::text)
       from candidate where r.id = candidate.id
       returning r.*
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message)
       select id, attempt, 'dispatching', 'dispatched', 'handing the run to GitHub Actions' from dispatched
     )
     select ${runColumns}, t.executor_config from dispatched r join backstop.targets t on t.id = r.target_id`,
    [options.startDeadlineMs, options.limit, exclusiveStatuses, options.dispatcher],
  );
  return rows.map((row) => ({ run: toRecord(row), executorConfig: row.executor_config }));
}

/** Merges executor facts (GitHub run id and URL, correlation state) into the run. */
export async function updateExecutor(db: Queryable, runId: string, patch: Record<string, unknown>, event?: { kind: string; message: string }): Promise<void> {
  await db.query(
    `with updated as (
       update backstop.runs set executor = coalesce(executor, '{}'::jsonb) || $2::jsonb where id = $1 returning id, attempt, status
     )
     insert into backstop.run_events (run_id, attempt, kind, status, message, data)
     select id, attempt, $3, status, $4, $2::jsonb from updated where $3::text is not null`,
    [runId, JSON.stringify(patch), event?.kind ?? null, event?.message ?? null],
  );
}

/**
 * Ends a run from the executor's side: the GitHub job is over (it completed, was refused, or
 * its last step reported) while the run never finalized. Safe without a lease because the
 * job that could have held one has ended. Returns null when the run was already terminal.
 */
export async function endRunFromExecutor(
  db: Queryable,
  input: { runId: string; status: 'failed' | 'cancelled' | 'timed_out'; error: { code: string; message: string }; onlyStatuses?: RunStatus[] },
): Promise<RunRecord | null> {
  const { rows } = await db.query<RunRow>(
    `with ended as (
       update backstop.runs set status = $2, finished_at = now(), error_code = $3, error_message = $4,
         cancel_requested_at = case when $2 = 'cancelled' then coalesce(cancel_requested_at, now()) else cancel_requested_at end
       where id = $1 and status = any($5::text[])
       returning *
     ), event as (
       insert into backstop.run_events (run_id, attempt, kind, status, message, data)
       select id, attempt, 'executor_ended', status, error_message, jsonb_build_object('code', error_code) from ended
     )
     select ${runColumns} from ended r join backstop.targets t on t.id = r.target_id`,
    [input.runId, input.status, input.error.code, input.error.message, input.onlyStatuses ?? activeStatuses],
  );
  return rows[0] ? toRecord(rows[0]) : null;
}

/** Runs handed to GitHub whose GitHub side still needs watching (or a cancel sent). */
export async function listExecutorRuns(db: Queryable): Promise<RunRecord[]> {
  const { rows } = await db.query<RunRow>(
    `select ${runColumns} from backstop.runs r join backstop.targets t on t.id = r.target_id
     where r.executor->>'kind' = 'github'
       and (r.status = any($1::text[])
            or (r.status = 'cancelled' and r.executor ? 'workflowRunId' and not r.executor ? 'cancelSent'))
     order by r.created_at
     limit 500`,
    [activeStatuses],
  );
  return rows.map(toRecord);
}
