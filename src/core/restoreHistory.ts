/**
 * A target's restores, from the events they leave on the backups they restored: an API restore
 * appends `restore_started`, then `restored` or `restore_failed`, both carrying its
 * `restoreId`; a CLI restore appends `restored` alone (with its `elapsedMs`). Events written
 * before restores had ids are paired in order: the oldest open start of the same backup.
 * Pure: the caller reads the events.
 */

export const restoreEventKinds = ['restore_started', 'restored', 'restore_failed'] as const;

export interface RestoreEvent {
  id: number;
  runId: string;
  at: string;
  kind: string;
  message: string | null;
  data: Record<string, unknown> | null;
}

export interface RestoreRecord {
  /** The restore's id, or `event-<id>` of its first event for restores recorded without one. */
  id: string;
  /** The backup run restored. */
  runId: string;
  /** `running` until an outcome is recorded. */
  status: 'running' | 'restored' | 'failed';
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  requestedBy: string | null;
  /** The last event's words: where it restored into, or what went wrong. */
  message: string | null;
}

const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

/** "restoring into … (token "ops")": who asked, in events written before it was recorded apart. */
function requesterInMessage(message: string | null): string | null {
  return /\(([^()]+)\)$/.exec(message ?? '')?.[1] ?? null;
}

/** Restores, newest first, from their events in any order. */
export function restoreHistory(events: readonly RestoreEvent[]): RestoreRecord[] {
  const records: RestoreRecord[] = [];
  const byId = new Map<string, RestoreRecord>();
  const openWithoutId = new Map<string, RestoreRecord[]>();
  for (const event of [...events].sort((a, b) => a.id - b.id)) {
    const restoreId = text(event.data?.restoreId);
    if (event.kind === 'restore_started') {
      const record: RestoreRecord = {
        id: restoreId ?? `event-${event.id}`,
        runId: event.runId,
        status: 'running',
        startedAt: event.at,
        finishedAt: null,
        error: null,
        requestedBy: text(event.data?.requestedBy) ?? requesterInMessage(event.message),
        message: event.message,
      };
      records.push(record);
      if (restoreId) byId.set(restoreId, record);
      else openWithoutId.set(event.runId, [...(openWithoutId.get(event.runId) ?? []), record]);
      continue;
    }
    if (event.kind !== 'restored' && event.kind !== 'restore_failed') continue;
    let record = restoreId ? byId.get(restoreId) : openWithoutId.get(event.runId)?.shift();
    if (record?.status !== 'running') {
      const elapsedMs = typeof event.data?.elapsedMs === 'number' ? event.data.elapsedMs : null;
      record = {
        id: restoreId ?? `event-${event.id}`,
        runId: event.runId,
        status: 'running',
        startedAt: elapsedMs === null ? null : new Date(Date.parse(event.at) - elapsedMs).toISOString(),
        finishedAt: null,
        error: null,
        requestedBy: text(event.data?.requestedBy),
        message: null,
      };
      records.push(record);
    }
    record.status = event.kind === 'restored' ? 'restored' : 'failed';
    record.finishedAt = event.at;
    record.message = event.message;
    if (event.kind === 'restore_failed') record.error = { code: text(event.data?.code) ?? 'RESTORE_FAILED', message: event.message ?? '' };
  }
  const startOf = (record: RestoreRecord) => Date.parse(record.startedAt ?? record.finishedAt ?? '') || 0;
  return records.sort((a, b) => startOf(b) - startOf(a));
}
