import { BackstopError } from '../core/errors.ts';
import type { StoredSegment } from '../core/changeSegment.ts';
import type { UnprotectedTable } from '../core/continuousRules.ts';
import type { WindowStream } from '../core/restoreWindow.ts';
import { withTransaction, type Pool, type Queryable } from './pool.ts';

/**
 * A continuous target's stream, its `continuous_streams` row with the target's settings: what
 * its streamer, the slot guard, turning continuity on and off and the window all read.
 */
export interface StreamRecord extends WindowStream {
  targetId: string;
  targetName: string;
  slotName: string;
  publicationName: string;
  confirmedLsn: string | null;
  /** WAL the slot held back on the source at the last guard pass. */
  retainedWalBytes: number | null;
  /** The newest instant before which every commit is stored (what the RPO is measured from), see recoveryPointSql. */
  recoveryPoint: string;
  generation: number;
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
  segmentSeconds: number;
  segmentBytes: number;
  slotWarnBytes: number;
  slotLimitBytes: number;
  maxRpoSeconds: number;
}

/** A stream this process holds: every write names the owner and generation, so a streamer that lost its lease changes nothing. */
export interface StreamLease {
  targetId: string;
  owner: string;
  generation: number;
  ttlMs: number;
}

interface StreamRow {
  target_id: string;
  target_name: string;
  slot_name: string;
  publication_name: string;
  state: StreamRecord['state'];
  stopped_reason: string | null;
  stopped_at: Date | string | null;
  confirmed_lsn: string | null;
  last_commit_at: Date | string | null;
  retained_wal_bytes: string | null;
  recovery_point: Date | string;
  unprotected_tables: unknown;
  generation: number;
  lease_owner: string | null;
  lease_expires_at: Date | string | null;
  segment_seconds: number;
  segment_bytes: string;
  slot_warn_bytes: string;
  slot_limit_bytes: string;
  max_rpo_seconds: number;
}

/** The recovery point, as SQL over `s` (continuous_streams): the newest instant before which every commit is stored. */
export const recoveryPointSql = 'coalesce(greatest(s.last_commit_at, s.caught_up_at), s.created_at)';

const streamColumns = `s.target_id, t.name as target_name, s.slot_name, s.publication_name, s.state, s.stopped_reason, s.stopped_at,
  s.confirmed_lsn::text as confirmed_lsn, s.last_commit_at, s.retained_wal_bytes, ${recoveryPointSql} as recovery_point, s.unprotected_tables, s.generation, s.lease_owner,
  s.lease_expires_at, t.segment_seconds, t.segment_bytes, t.slot_warn_bytes, t.slot_limit_bytes, t.max_rpo_seconds`;

function toRecord(row: StreamRow): StreamRecord {
  return {
    targetId: row.target_id,
    targetName: row.target_name,
    slotName: row.slot_name,
    publicationName: row.publication_name,
    state: row.state,
    stoppedReason: row.stopped_reason,
    stoppedAt: isoOrNull(row.stopped_at),
    confirmedLsn: row.confirmed_lsn,
    lastCommitAt: isoOrNull(row.last_commit_at),
    retainedWalBytes: row.retained_wal_bytes === null ? null : Number(row.retained_wal_bytes),
    recoveryPoint: new Date(row.recovery_point).toISOString(),
    unprotectedTables: Array.isArray(row.unprotected_tables) ? (row.unprotected_tables as UnprotectedTable[]) : [],
    generation: row.generation,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: isoOrNull(row.lease_expires_at),
    segmentSeconds: row.segment_seconds,
    segmentBytes: Number(row.segment_bytes),
    slotWarnBytes: Number(row.slot_warn_bytes),
    slotLimitBytes: Number(row.slot_limit_bytes),
    maxRpoSeconds: row.max_rpo_seconds,
  };
}

function isoOrNull(value: Date | string | null): string | null {
  return value === null ? null : new Date(value).toISOString();
}

/**
 * Takes the lease of a stream nobody holds (never leased, or its lease expired), of a target
 * still continuous, and not stopped: the generation grows, which fences out the streamer that
 * held it before. `targetId` takes that stream only; without it, any one that is free.
 */
export async function claimStream(db: Queryable, options: { owner: string; ttlMs: number; targetId?: string; exceptTargets?: string[] }): Promise<StreamRecord | null> {
  const { rows } = await db.query<StreamRow>(
    `with free as (
       select s.target_id from backstop.continuous_streams s join backstop.targets t on t.id = s.target_id
       where s.state <> 'stopped' and t.continuous
         and (s.lease_expires_at is null or s.lease_expires_at < now())
         and ($3::uuid is null or s.target_id = $3::uuid)
         and not (s.target_id = any($4::uuid[]))
       order by s.lease_expires_at nulls first
       limit 1
       for update of s skip locked
     ), claimed as (
       update backstop.continuous_streams s
       set lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::float8 / 1000), generation = s.generation + 1, updated_at = now()
       from free where s.target_id = free.target_id
       returning s.*
     )
     select ${streamColumns} from claimed s join backstop.targets t on t.id = s.target_id`,
    [options.owner, options.ttlMs, options.targetId ?? null, options.exceptTargets ?? []],
  );
  return rows[0] ? toRecord(rows[0]) : null;
}

/** Extends the lease; false when it is no longer ours (taken over, or the stream was stopped). */
export async function renewStreamLease(db: Queryable, lease: StreamLease): Promise<boolean> {
  const { rowCount } = await db.query(
    `update backstop.continuous_streams
     set lease_expires_at = now() + make_interval(secs => $4::float8 / 1000), updated_at = now()
     where target_id = $1 and lease_owner = $2 and generation = $3 and lease_expires_at > now() and state <> 'stopped'`,
    [lease.targetId, lease.owner, lease.generation, lease.ttlMs],
  );
  return rowCount === 1;
}

/** Gives the lease up at once (a clean stop), so that the next streamer need not wait for it to expire. */
export async function releaseStreamLease(db: Queryable, lease: StreamLease): Promise<void> {
  await db.query(
    `update backstop.continuous_streams set lease_owner = null, lease_expires_at = null, updated_at = now()
     where target_id = $1 and lease_owner = $2 and generation = $3`,
    [lease.targetId, lease.owner, lease.generation],
  );
}

export async function getStream(db: Queryable, targetId: string): Promise<StreamRecord | null> {
  const { rows } = await db.query<StreamRow>(`select ${streamColumns} from backstop.continuous_streams s join backstop.targets t on t.id = s.target_id where s.target_id = $1`, [
    targetId,
  ]);
  return rows[0] ? toRecord(rows[0]) : null;
}

/** Streams the slot guard looks after: every one not stopped of a continuous target, leased or not. */
export async function listGuardedStreams(db: Queryable): Promise<StreamRecord[]> {
  const { rows } = await db.query<StreamRow>(
    `select ${streamColumns} from backstop.continuous_streams s join backstop.targets t on t.id = s.target_id
     where s.state <> 'stopped' and t.continuous order by t.name`,
  );
  return rows.map(toRecord);
}

/**
 * The catalog's half of storing a segment, in one transaction: its row, and the stream's
 * confirmed position and newest commit — only while the lease is still this streamer's
 * (owner and generation, unexpired). Throws LEASE_LOST otherwise, having changed nothing:
 * the caller must then not confirm anything to the slot. `alsoRecord` writes what follows from
 * the segment in the same transaction (the base backup a schema change needs).
 */
export async function recordSegment<T>(pool: Pool, lease: StreamLease, segment: StoredSegment, alsoRecord?: (client: Queryable) => Promise<T>): Promise<T | undefined> {
  return withTransaction(pool, async (client) => {
    const { rowCount } = await client.query(
      `update backstop.continuous_streams
       set confirmed_lsn = $4::pg_lsn, last_commit_at = greatest(last_commit_at, $5::timestamptz), updated_at = now()
       where target_id = $1 and lease_owner = $2 and generation = $3 and lease_expires_at > now() and state <> 'stopped'`,
      [lease.targetId, lease.owner, lease.generation, segment.manifest.endLsn, segment.manifest.lastCommitAt],
    );
    if (rowCount !== 1) {
      throw new BackstopError(
        'LEASE_LOST',
        `The stream of target ${segment.manifest.target} is no longer held by ${lease.owner} (generation ${lease.generation}): another streamer took it over, or it was stopped.`,
      );
    }
    const manifest = segment.manifest;
    await client.query(
      `insert into backstop.change_segments
         (target_id, slot_name, generation, start_lsn, end_lsn, first_commit_at, last_commit_at, transactions, manifest_key, size, manifest)
       values ($1, $2, $3, $4::pg_lsn, $5::pg_lsn, $6, $7, $8, $9, $10, $11::jsonb)
       on conflict (target_id, manifest_key) do nothing`,
      [
        lease.targetId,
        manifest.slot,
        manifest.generation,
        manifest.startLsn,
        manifest.endLsn,
        manifest.firstCommitAt,
        manifest.lastCommitAt,
        manifest.transactions,
        segment.manifestKey,
        manifest.file.size,
        JSON.stringify(manifest),
      ],
    );
    return alsoRecord ? await alsoRecord(client) : undefined;
  });
}

/** What a slot guard pass measured. */
export async function recordSlotMeasure(db: Queryable, targetId: string, retainedWalBytes: number | null): Promise<void> {
  await db.query(`update backstop.continuous_streams set retained_wal_bytes = $2, last_pass_at = now(), updated_at = now() where target_id = $1`, [targetId, retainedWalBytes]);
}

/**
 * The stream stops for good (its slot is gone, or continuity was turned off): no streamer
 * claims it again, and whoever holds its lease loses it at its next renewal or segment (the
 * generation grows too, so even a write racing this one is fenced off). Its segments' rows
 * stay: the window they cover stays restorable. A stream already stopped keeps the reason it
 * stopped for; false then.
 */
export async function stopStream(db: Queryable, targetId: string, reason: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `update backstop.continuous_streams
     set state = 'stopped', stopped_reason = $2, stopped_at = now(), lease_owner = null, lease_expires_at = null, generation = generation + 1, updated_at = now()
     where target_id = $1 and state <> 'stopped'`,
    [targetId, reason],
  );
  return rowCount === 1;
}

/**
 * The stream row of a newly made slot: state `starting` until its first base backup succeeds.
 * Its confirmed position starts at the slot's consistent point: the archive holds every
 * transaction from there on, so the streamer's first segment starts there, before every base
 * backup's own point, even when the slot was told of quiet stretches before anything was
 * stored (segments chain from the last one stored, see src/continuous/streamer.ts).
 * A target enabled again keeps its row, whose `generation` grows, so a streamer of the
 * earlier stream that wakes up is fenced off; everything else starts afresh.
 */
export async function startStream(db: Queryable, input: { targetId: string; slot: string; publication: string; unprotected: UnprotectedTable[]; startLsn: string }): Promise<void> {
  await db.query(
    `insert into backstop.continuous_streams (target_id, slot_name, publication_name, unprotected_tables, confirmed_lsn)
     values ($1, $2, $3, $4::jsonb, $5::pg_lsn)
     on conflict (target_id) do update set slot_name = excluded.slot_name, publication_name = excluded.publication_name,
       unprotected_tables = excluded.unprotected_tables, state = 'starting', stopped_reason = null, stopped_at = null,
       confirmed_lsn = excluded.confirmed_lsn, last_commit_at = null, retained_wal_bytes = null, last_pass_at = null,
       lease_owner = null, lease_expires_at = null, generation = backstop.continuous_streams.generation + 1, updated_at = now()`,
    [input.targetId, input.slot, input.publication, JSON.stringify(input.unprotected), input.startLsn],
  );
}

/** A re-planned publication of a running stream: only the list of tables left out changes. */
export async function recordUnprotectedTables(db: Queryable, targetId: string, unprotected: UnprotectedTable[]): Promise<void> {
  await db.query('update backstop.continuous_streams set unprotected_tables = $2::jsonb, updated_at = now() where target_id = $1', [targetId, JSON.stringify(unprotected)]);
}

/**
 * The streamer found itself caught up (nothing unstored) at a keepalive it just received: no
 * commit before now is missing from the archive. The catalog's clock, not the keepalive's
 * timestamp: pg-logical-replication 2.5 decodes that one from the wrong epoch (7 days early).
 */
export async function recordCaughtUp(db: Queryable, lease: StreamLease): Promise<void> {
  await db.query(
    `update backstop.continuous_streams set caught_up_at = now()
     where target_id = $1 and lease_owner = $2 and generation = $3 and lease_expires_at > now() and state <> 'stopped'`,
    [lease.targetId, lease.owner, lease.generation],
  );
}

export interface StreamRpo {
  targetName: string;
  state: StreamRecord['state'];
  /** now − the recovery point, seconds (the catalog's clock). */
  rpoSeconds: number;
  maxRpoSeconds: number;
  retainedWalBytes: number | null;
}

/** Every continuous target's RPO and slot measure, for /metrics. */
export async function listStreamRpo(db: Queryable): Promise<StreamRpo[]> {
  const { rows } = await db.query<{ name: string; state: StreamRecord['state']; rpo: number; max_rpo_seconds: number; retained_wal_bytes: string | null }>(
    `select t.name, s.state, extract(epoch from now() - ${recoveryPointSql})::float8 as rpo, t.max_rpo_seconds, s.retained_wal_bytes
     from backstop.continuous_streams s join backstop.targets t on t.id = s.target_id
     where t.continuous order by t.name`,
  );
  return rows.map((row) => ({
    targetName: row.name,
    state: row.state,
    rpoSeconds: Math.max(0, row.rpo),
    maxRpoSeconds: row.max_rpo_seconds,
    retainedWalBytes: row.retained_wal_bytes === null ? null : Number(row.retained_wal_bytes),
  }));
}
