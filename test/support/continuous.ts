import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  compareLsn,
  segmentLineSchema,
  segmentManifestSchema,
  segmentPrefix,
  slotNameFor,
  type SegmentLine,
  type SegmentManifest,
  type TransactionLine,
} from '../../src/core/changeSegment.ts';
import type { Pool } from '../../src/db/pool.ts';
import { createTarget, type TargetOptions, type TargetRecord } from '../../src/db/targets.ts';
import { createAgeDecryptStream, type AgeIdentity } from '../../src/pipeline/age.ts';
import { createDecompressor } from '../../src/pipeline/compression.ts';
import { openStore } from '../../src/storage/openStore.ts';
import type { RestoreRecord } from '../../src/core/restoreHistory.ts';
import { adminQuery, type TestDatabase } from './pg.ts';
import type { TestServer } from './server.ts';
import { waitFor } from './wait.ts';

export interface ContinuousTarget {
  target: TargetRecord;
  slot: string;
}

/**
 * A continuous target made by hand, as `target add --continuous` would: the publication of
 * `tables`, the slot (pgoutput, permanent), the target's continuous settings and its stream row.
 */
export async function makeContinuousTarget(
  pool: Pool,
  input: { name: string; sourceUrl: string; storeUrl: string; tables: string[]; options?: TargetOptions; settings?: Record<string, number>; state?: 'starting' | 'streaming' },
): Promise<ContinuousTarget> {
  const target = await createTarget(pool, { name: input.name, databaseUrl: input.sourceUrl, storeUrl: input.storeUrl, options: input.options ?? {} });
  const slot = slotNameFor(target.id);
  await adminQuery(`create publication ${slot} for table ${input.tables.join(', ')}`, [], input.sourceUrl);
  await adminQuery(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot], input.sourceUrl);
  const settings = { segment_seconds: 1, ...input.settings };
  const assignments = Object.keys(settings).map((column, index) => `${column} = $${index + 2}`);
  await pool.query(`update backstop.targets set continuous = true, ${assignments.join(', ')} where id = $1`, [target.id, ...Object.values(settings)]);
  await pool.query(`insert into backstop.continuous_streams (target_id, slot_name, publication_name, state) values ($1, $2, $2, $3)`, [target.id, slot, input.state ?? 'streaming']);
  return { target, slot };
}

export interface ReadSegment {
  key: string;
  manifest: SegmentManifest;
  lines: SegmentLine[];
}

/** Every stored segment (those with a manifest) of a target's slot, in key order, read back through decryption and decompression and checked against the schema. */
export async function readStoredSegments(storeUrl: string, targetName: string, slot: string, identities: AgeIdentity[] = []): Promise<ReadSegment[]> {
  const store = await openStore(storeUrl);
  try {
    const prefix = segmentPrefix(targetName, slot);
    const keys: string[] = [];
    for await (const object of store.list(prefix)) if (object.key.endsWith('.json')) keys.push(object.key);
    const segments: ReadSegment[] = [];
    for (const key of keys.sort()) {
      const manifest = segmentManifestSchema.parse(JSON.parse(await text(await store.get(key))));
      const stages: NodeJS.ReadWriteStream[] = [];
      if (manifest.file.encrypted) stages.push(createAgeDecryptStream(identities));
      const decompressor = createDecompressor(manifest.file.compression);
      if (decompressor) stages.push(decompressor);
      const chunks: Buffer[] = [];
      await pipeline([
        await store.get(prefix + manifest.file.name),
        ...stages,
        async (source: AsyncIterable<Buffer>) => {
          for await (const chunk of source) chunks.push(chunk);
        },
      ] as unknown as readonly NodeJS.ReadWriteStream[]);
      const lines = Buffer.concat(chunks)
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => segmentLineSchema.parse(JSON.parse(line)));
      segments.push({ key, manifest, lines });
    }
    return segments;
  } finally {
    await store.close();
  }
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The transactions of segments, each commit LSN once (what a restore replays), in commit LSN order. */
export function uniqueTransactions(segments: ReadSegment[]): TransactionLine[] {
  const byLsn = new Map<string, TransactionLine>();
  for (const segment of segments) for (const line of segment.lines) if (line.type === 'transaction' && !byLsn.has(line.lsn)) byLsn.set(line.lsn, line);
  return [...byLsn.values()].sort((a, b) => compareLsn(a.lsn, b.lsn));
}

/** The slot as the source sees it. */
export async function slotState(sourceUrl: string, slot: string): Promise<{ confirmed: string; active: boolean; activePid: number | null } | null> {
  const rows = await adminQuery<{ confirmed: string; active: boolean; active_pid: number | null }>(
    'select confirmed_flush_lsn::text as confirmed, active, active_pid from pg_replication_slots where slot_name = $1',
    [slot],
    sourceUrl,
  );
  return rows[0] ? { confirmed: rows[0].confirmed, active: rows[0].active, activePid: rows[0].active_pid } : null;
}

/**
 * A continuous target made through the API, as a person would (publication, slot, stream row,
 * base backup queued); waits until a worker finished its first base backup, whose run id it
 * returns.
 */
export async function addContinuousTargetThroughApi(api: TestServer, body: Record<string, unknown>, timeoutMs = 120_000): Promise<string> {
  const created = await api.request('POST', '/api/v1/targets', { body });
  if (created.status !== 201) throw new Error(`creating the continuous target answered ${created.status}: ${created.text}`);
  const baseRunId = created.json.baseRunId as string;
  await waitFor(
    'the base backup',
    async () => {
      const run = await api.request('GET', `/api/v1/runs/${baseRunId}`);
      if (run.json.status === 'failed') throw new Error(`base backup failed: ${JSON.stringify(run.json.error)}`);
      return run.json.status === 'succeeded';
    },
    timeoutMs,
  );
  return baseRunId;
}

/** The source's WAL position now: every commit made so far is before it. */
export async function currentLsn(url: string): Promise<string> {
  return (await adminQuery<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn', [], url))[0]!.lsn;
}

/**
 * Waits until the slot is confirmed at or past `lsn` (the source's position after a commit).
 * The streamer confirms only what it has stored and recorded in the catalog, or, caught up, a
 * position with nothing unstored before it: every commit before `lsn` is then in the archive,
 * the catalog and the window. Waiting for the stored segments' end to reach `lsn` instead could
 * wait for ever: the server's position runs ahead of this database's last commit whenever other
 * databases of the server write (the shared test server's do, all the time).
 */
export async function waitForSlotConfirmed(sourceUrl: string, slot: string, lsn: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `the slot ${slot} to be confirmed past ${lsn}`,
    async () => {
      const state = await slotState(sourceUrl, slot);
      return state !== null && compareLsn(state.confirmed, lsn) >= 0;
    },
    timeoutMs,
    100,
  );
}

/** Waits until the target's restorable window holds every commit made on the source before `lsn` (see waitForSlotConfirmed). */
export async function waitForWindowTo(api: TestServer, target: string, sourceUrl: string, lsn: string, timeoutMs = 60_000): Promise<void> {
  const shown = await api.request('GET', `/api/v1/targets/${target}`, { token: api.tokens.viewer });
  await waitForSlotConfirmed(sourceUrl, shown.json.continuity.slot, lsn, timeoutMs);
}

/** Waits until a restore in the target's history has ended; its record. */
export async function waitForRestoreEnd(api: TestServer, target: string, restoreId: string, timeoutMs = 120_000): Promise<RestoreRecord> {
  return waitFor(
    'the restore to end',
    async () => {
      const history = await api.request('GET', `/api/v1/targets/${target}/restores`, { token: api.tokens.viewer });
      const item = (history.json.items as RestoreRecord[]).find((entry) => entry.id === restoreId);
      return item && item.status !== 'running' ? item : null;
    },
    timeoutMs,
  );
}

/** Drops the replication slots a test left on a source (a database that has one cannot be dropped), then the database. */
export async function dropSourceWithSlots(source: TestDatabase): Promise<void> {
  await adminQuery('select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active', [source.name]).catch(() => {});
  await source.drop();
}

/** Waits until the catalog records every commit of the target's source made before `lsn` as stored segments (see waitForSlotConfirmed). */
export async function waitForStoredTo(pool: Pool, targetId: string, sourceUrl: string, lsn: string, timeoutMs = 60_000): Promise<void> {
  const { rows } = await pool.query<{ slot: string }>('select slot_name as slot from backstop.continuous_streams where target_id = $1', [targetId]);
  await waitForSlotConfirmed(sourceUrl, rows[0]!.slot, lsn, timeoutMs);
}
