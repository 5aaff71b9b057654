import { runStatuses, type RunStatus } from '../core/runState.ts';
import type { Queryable } from './pool.ts';
import { runColumns, toRecord, type RunKind, type RunRecord, type RunRow } from './runRecords.ts';

export async function listRuns(db: Queryable, filter: { targetName?: string; status?: RunStatus; limit?: number } = {}): Promise<RunRecord[]> {
  const { rows } = await db.query<RunRow>(
    `select ${runColumns} from backstop.runs r join backstop.targets t on t.id = r.target_id
     where ($1::text is null or t.name = $1) and ($2::text is null or r.status = $2)
     order by r.created_at desc, r.id limit $3`,
    [filter.targetName ?? null, filter.status ?? null, Math.min(Math.max(filter.limit ?? 50, 1), 1000)],
  );
  return rows.map(toRecord);
}

/** Position of a run in the newest-first order: creation time in microseconds, then id. */
export interface RunPosition {
  createdUs: number;
  id: string;
}

export interface RunPageFilter {
  targetName?: string;
  status?: RunStatus;
  kind?: RunKind;
  limit: number;
  /** Keyset pagination: runs strictly after this position in the newest-first order. */
  after?: RunPosition;
  offset?: number;
}

/**
 * One page of runs, newest first, for the API. Keyset pagination needs the exact creation time:
 * timestamps reach JavaScript with millisecond precision, so the position is built from the
 * database's microseconds (whole seconds and the microsecond part separately, exact on any
 * server version) rather than from `createdAt`.
 */
export async function listRunsPage(db: Queryable, filter: RunPageFilter): Promise<{ runs: RunRecord[]; positions: RunPosition[] }> {
  const { rows } = await db.query<RunRow & { created_us: number }>(
    `select ${runColumns},
       extract(epoch from date_trunc('second', r.created_at))::bigint * 1000000
         + extract(microseconds from r.created_at)::bigint % 1000000 as created_us
     from backstop.runs r join backstop.targets t on t.id = r.target_id
     where ($1::text is null or t.name = $1) and ($2::text is null or r.status = $2) and ($3::text is null or r.kind = $3)
       and ($4::bigint is null or (r.created_at, r.id) < (timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5::uuid))
     order by r.created_at desc, r.id desc
     limit $6 offset $7`,
    [filter.targetName ?? null, filter.status ?? null, filter.kind ?? null, filter.after?.createdUs ?? null, filter.after?.id ?? null, filter.limit, filter.offset ?? 0],
  );
  return { runs: rows.map(toRecord), positions: rows.map((row) => ({ createdUs: Number(row.created_us), id: row.id })) };
}

/** How many runs are in each status (every status present, zero when none). */
export async function countRunsByStatus(db: Queryable): Promise<Record<RunStatus, number>> {
  const { rows } = await db.query<{ status: RunStatus; count: number }>(
    `select s.status, count(r.id)::int as count
     from unnest($1::text[]) as s(status) left join backstop.runs r on r.status = s.status
     group by s.status`,
    [runStatuses],
  );
  return Object.fromEntries(rows.map((row) => [row.status, row.count])) as Record<RunStatus, number>;
}

export interface FinishedRunSample {
  id: string;
  kind: RunKind;
  status: RunStatus;
  finishedAt: string;
  /** Position for the next call, exact to the microsecond. */
  finishedUs: number;
  /** From start to finish; null when the run never started (cancelled or reaped in the queue). */
  durationSeconds: number | null;
  /** Stored bytes of the artifact (files and manifest); null without one. */
  artifactBytes: number | null;
}

/**
 * Runs that finished after `after` (exclusive, in finish order), for metrics. Runs that
 * finished in the last second are left for the next call: `finished_at` is the finalizing
 * transaction's start time, so a run committed a moment from now may still get a time
 * earlier than one already read.
 */
export async function listFinishedRunsAfter(db: Queryable, after: { finishedUs: number; id: string } | null, limit: number): Promise<FinishedRunSample[]> {
  const { rows } = await db.query<{
    id: string;
    kind: RunKind;
    status: RunStatus;
    finished_at: string;
    finished_us: number;
    duration_seconds: number | null;
    artifact_bytes: number | null;
  }>(
    `select r.id, r.kind, r.status, r.finished_at,
       extract(epoch from date_trunc('second', r.finished_at))::bigint * 1000000
         + extract(microseconds from r.finished_at)::bigint % 1000000 as finished_us,
       extract(epoch from (r.finished_at - r.started_at))::float8 as duration_seconds,
       case when r.artifact is null then null else
         coalesce((r.artifact->'manifest'->>'size')::bigint, 0)
         + coalesce((select sum((f->>'size')::bigint) from jsonb_array_elements(r.artifact->'files') f), 0) end as artifact_bytes
     from backstop.runs r
     where r.finished_at is not null and r.finished_at < now() - interval '1 second'
       and ($1::bigint is null or (r.finished_at, r.id) > (timestamptz 'epoch' + $1::bigint * interval '1 microsecond', $2::uuid))
     order by r.finished_at, r.id
     limit $3`,
    [after?.finishedUs ?? null, after?.id ?? null, limit],
  );
  return rows.map((row) => ({
    id: row.id,
    kind: row.kind,
    status: row.status,
    finishedAt: row.finished_at,
    finishedUs: Number(row.finished_us),
    durationSeconds: row.duration_seconds,
    artifactBytes: row.artifact_bytes === null ? null : Number(row.artifact_bytes),
  }));
}
