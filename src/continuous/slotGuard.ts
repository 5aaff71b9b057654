import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { formatBytes } from '../core/formatBytes.ts';
import { recordSlotMeasure, stopStream, type StreamRecord } from '../db/continuousStreams.ts';
import type { Queryable } from '../db/pool.ts';
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

export type SlotGuardOutcome = 'ok' | 'dropped' | 'missing';

export interface SlotGuardDeps {
  pool: Queryable;
  log: Logger;
  /** The deadline of the new base backup queued when the slot goes. */
  runDeadlineMs?: number;
}

/**
 * One pass of the slot guard over one stream, on a connection to its source: measure, store
 * the measure, and when the rule says so drop the slot (its walsender terminated first: a
 * slot in use cannot be dropped), stop the stream with the reason and queue a new backup of
 * the target. The alarms (slot_wal_warning, slot_dropped) follow from what is stored here.
 */
export async function guardSlot(deps: SlotGuardDeps, stream: StreamRecord, source: Queryable): Promise<SlotGuardOutcome> {
  const measure = await measureSlot(source, stream.slotName);
  await recordSlotMeasure(deps.pool, stream.targetId, measure?.retainedWalBytes ?? null);
  const decision = decideSlotGuard(stream, measure);
  if (decision.action === 'none') return 'ok';
  if (decision.action === 'drop') await dropSlot(source, stream.slotName);
  // Only the pass that stopped it queues the backup: two guards may race here.
  if (!(await stopStream(deps.pool, stream.targetId, decision.reason))) return decision.action === 'drop' ? 'dropped' : 'missing';
  deps.log.warn({ target: stream.targetName, slot: stream.slotName, reason: decision.reason }, 'continuous stream stopped');
  // Continuity restarts from a new base: the backup taken now covers what the archive lost.
  await createRun(deps.pool, { targetId: stream.targetId, trigger: 'slot_guard', runDeadlineMs: deps.runDeadlineMs ?? 6 * 3600_000 });
  return decision.action === 'drop' ? 'dropped' : 'missing';
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
