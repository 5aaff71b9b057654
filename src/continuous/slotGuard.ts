import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from 'pino';
import { formatBytes } from '../core/formatBytes.ts';
import { getStream, recordSlotMeasure, stopStream, type StreamRecord } from '../db/continuousStreams.ts';
import { withTransaction, type Pool, type Queryable } from '../db/pool.ts';
import { createRun } from '../db/runRecords.ts';

/** What pg_replication_slots says of a slot, and how much WAL it holds back on the source. */
export interface SlotMeasure {
  /** reserved, extended, unreserved (past max_slot_wal_keep_size: invalidated at the next checkpoint), lost. */
  walStatus: string | null;
  /** pg_current_wal_lsn() − restart_lsn, bytes; null when the slot has no restart position. */
  retainedWalBytes: number | null;
  activePid: number | null;
}

export type SlotGuardDecision =
  | { action: 'none' }
  | { action: 'drop'; reason: string }
  /** The slot is gone (dropped by someone, or never made): the stream cannot go on. */
  | { action: 'stop'; reason: string };

/**
 * The slot guard's rule, pure: the source's disk comes first. A slot the server would
 * invalidate (`unreserved`: past max_slot_wal_keep_size) or already did (`lost`), or one
 * holding back more WAL than the target's hard limit, is dropped; the warning threshold is
 * the alarm evaluator's (it reads the measure stored here).
 */
export function decideSlotGuard(stream: Pick<StreamRecord, 'slotName' | 'slotLimitBytes' | 'state' | 'confirmedLsn' | 'targetName'>, measure: SlotMeasure | null): SlotGuardDecision {
  const again = `run \`backstop target update ${stream.targetName} --continuous\` to start again`;
  if (measure === null) {
    // A stream being set up may have its row before its slot; once it streamed, a missing slot is final.
    if (stream.state === 'starting' && stream.confirmedLsn === null) return { action: 'none' };
    return { action: 'stop', reason: `slot missing: the replication slot ${stream.slotName} no longer exists on the source; ${again}` };
  }
  if (measure.walStatus === 'lost' || measure.walStatus === 'unreserved') {
    const why = measure.walStatus === 'lost' ? 'the server invalidated it (max_slot_wal_keep_size)' : 'it is past the server’s max_slot_wal_keep_size and would be invalidated';
    return { action: 'drop', reason: `slot dropped: ${why}; ${again}` };
  }
  if (measure.retainedWalBytes !== null && measure.retainedWalBytes > stream.slotLimitBytes) {
    return {
      action: 'drop',
      reason: `slot dropped: it held back ${formatBytes(measure.retainedWalBytes)} of WAL on the source, over the limit of ${formatBytes(stream.slotLimitBytes)}; ${again}`,
    };
  }
  return { action: 'none' };
}

export async function measureSlot(source: Queryable, slotName: string): Promise<SlotMeasure | null> {
  const { rows } = await source.query<{ wal_status: string | null; retained: string | null; active_pid: number | null }>(
    `select wal_status, (pg_current_wal_lsn() - restart_lsn)::bigint::text as retained, active_pid
     from pg_replication_slots where slot_name = $1`,
    [slotName],
  );
  const row = rows[0];
  if (!row) return null;
  return { walStatus: row.wal_status, retainedWalBytes: row.retained === null ? null : Number(row.retained), activePid: row.active_pid };
}

/** ok: the stream goes on; stopped: it is stopped (by this pass, or by another just before). */
export type SlotGuardOutcome = 'ok' | 'stopped';

export interface SlotGuardDeps {
  pool: Pool;
  log: Logger;
  /** The deadline of the new base backup queued when the slot goes. */
  runDeadlineMs?: number;
}

// Arbitrary constant: one guard pass at a time per stream, across every process.
const GUARD_LOCK_KEY = 0x736c6f74; // "slot"

/**
 * One pass of the slot guard over one stream, on a connection to its source: measure, store
 * the measure, and when the rule says so drop the slot (its walsender terminated first: a
 * slot in use cannot be dropped), stop the stream with the reason and queue a new backup of
 * the target. The alarms (slot_wal_warning, slot_dropped) follow from what is stored here.
 *
 * Passes over one stream are serialized by a catalog advisory lock: a streamer's pass and a
 * worker's may overlap, and the second must not find the slot the first just dropped missing
 * and record that instead of why.
 */
export async function guardSlot(deps: SlotGuardDeps, stream: StreamRecord, source: Queryable): Promise<SlotGuardOutcome> {
  return withTransaction(deps.pool, async (catalog) => {
    const { rows } = await catalog.query<{ locked: boolean }>('select pg_try_advisory_xact_lock($1, hashtext($2)) as locked', [GUARD_LOCK_KEY, stream.targetId]);
    if (!rows[0]?.locked) return 'ok';
    const current = await getStream(catalog, stream.targetId);
    if (!current || current.state === 'stopped') return 'stopped';
    const measure = await measureSlot(source, current.slotName);
    await recordSlotMeasure(catalog, current.targetId, measure?.retainedWalBytes ?? null);
    const decision = decideSlotGuard(current, measure);
    if (decision.action === 'none') return 'ok';
    if (decision.action === 'drop') await dropSlot(source, current.slotName);
    await stopStream(catalog, current.targetId, decision.reason);
    // Continuity restarts from a new base: the backup taken now covers what the archive lost.
    await createRun(catalog, { targetId: current.targetId, trigger: 'slot_guard', runDeadlineMs: deps.runDeadlineMs ?? 6 * 3600_000 });
    deps.log.warn({ target: current.targetName, slot: current.slotName, reason: decision.reason }, 'continuous stream stopped');
    return 'stopped';
  });
}

/** One guard pass on a connection of its own; a failure to measure is logged and counts as no action (the next pass tries again). */
export async function guardSourceSlot(deps: SlotGuardDeps, stream: StreamRecord, databaseUrl: string): Promise<SlotGuardOutcome> {
  const source = new pg.Client({ connectionString: databaseUrl, application_name: 'backstop:slot-guard', connectionTimeoutMillis: 15_000 });
  source.on('error', () => {});
  try {
    await source.connect();
    return await guardSlot(deps, stream, source);
  } catch (error) {
    deps.log.warn({ target: stream.targetName, err: error }, 'slot guard pass failed');
    return 'ok';
  } finally {
    await source.end().catch(() => {});
  }
}

/** Drops a slot, ending the connection that streams it first; retries while that walsender exits. */
async function dropSlot(source: Queryable, slotName: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    await source.query('select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null', [slotName]);
    try {
      await source.query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1', [slotName]);
      return;
    } catch (error) {
      // 55006 object_in_use: the terminated walsender has not exited yet, or a streamer reconnected.
      if ((error as { code?: string }).code !== '55006' || Date.now() > deadline) throw error;
      await delay(100);
    }
  }
}
