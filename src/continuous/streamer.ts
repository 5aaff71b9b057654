import { setTimeout as delay } from 'node:timers/promises';
import { LogicalReplicationService } from 'pg-logical-replication';
import pg from 'pg';
import type { Logger } from 'pino';
import { bigIntToLsn, compareLsn, lsnToBigInt } from '../core/changeSegment.ts';
import { isBackstopError } from '../core/errors.ts';
import { pgErrorCode } from '../core/pgErrors.ts';
import { recordCaughtUp, recordSegment, releaseStreamLease, renewStreamLease, type StreamLease, type StreamRecord } from '../db/continuousStreams.ts';
import { getTargetWithSecret } from '../db/targets.ts';
import type { Pool } from '../db/pool.ts';
import { parseRecipient } from '../pipeline/age.ts';
import { defaultCompression, parseCompression } from '../pipeline/compression.ts';
import { queueBaseBackup } from '../db/queueBaseBackup.ts';
import { openStore } from '../storage/openStore.ts';
import { guardSourceSlot } from './slotGuard.ts';
import { sampleSequences } from './sampleSequences.ts';
import { firstSchemaChange, SegmentBuilder, type PendingSegment } from './segmentBuilder.ts';
import { TextPgoutputPlugin } from './textPgoutputPlugin.ts';
import { writeSegment, type SegmentDestination } from './writeSegment.ts';

export interface StreamerOptions {
  owner: string;
  leaseTtlMs: number;
  /** Aborted: store what has been received whole, confirm it, and end (SIGTERM, shutdown). */
  signal: AbortSignal;
  /** Wait after a session failed (the store down, the source restarting, the slot busy) before the next; default 1 s, doubling up to 15 s. */
  retryDelayMs?: number;
  /** How often a standby status goes to the source when nothing else is said (default 10 s or a quarter of the RPO bound, well within wal_sender_timeout). */
  statusIntervalMs?: number;
  /** How often the slot guard measures while streaming, besides after every segment (default 10 s). */
  guardIntervalMs?: number;
  /** The deadline of a base backup queued because a table changed shape (BACKSTOP_RUN_DEADLINE). */
  runDeadlineMs?: number;
}

const DEFAULT_RUN_DEADLINE_MS = 6 * 3600_000;

/**
 * A segment in which a table changed shape: replay from a base taken before it cannot cross it
 * (the base's tables lack the new columns), so the archive needs a new base after it.
 */
function schemaChangeOf(segment: PendingSegment): { reason: string; changedAt: string } | undefined {
  if (segment.schemaChanges.length === 0) return undefined;
  const first = firstSchemaChange(segment.lines) ?? { lsn: segment.startLsn, committedAt: segment.firstCommitAt };
  return { reason: `schema change of ${segment.schemaChanges.join(', ')} at ${first.lsn}`, changedAt: first.committedAt };
}

export type StreamerEnd = 'stopped' | 'lease_lost' | 'stream_stopped';

/** PostgreSQL's answer when the slot already streams to another connection (object_in_use). */
const OBJECT_IN_USE = '55006';

/**
 * Streams one continuous target's slot into its change archive for as long as it holds the
 * stream's lease (already claimed by the caller): a session reads the slot from the position
 * stored last, gathers committed transactions into segments and stores each (see
 * streamSession); a failed session (store or source down) is followed by another, from the
 * stored position again, while the lease is renewed. Lease lost: everything stops at once and
 * nothing more is confirmed.
 */
export async function runStreamer(deps: { pool: Pool; log: Logger }, stream: StreamRecord, options: StreamerOptions): Promise<StreamerEnd> {
  const lease: StreamLease = { targetId: stream.targetId, owner: options.owner, generation: stream.generation, ttlMs: options.leaseTtlMs };
  const log = deps.log.child({ target: stream.targetName, slot: stream.slotName, generation: stream.generation });
  const lost = new AbortController();
  let leaseValidUntil = Date.now() + options.leaseTtlMs;
  const renewing = setInterval(() => {
    renewStreamLease(deps.pool, lease)
      .then((renewed) => {
        if (renewed) leaseValidUntil = Date.now() + options.leaseTtlMs;
        else lost.abort(new Error('lease lost'));
      })
      .catch((error) => {
        // The catalog unreachable: the lease still counts until its expiry, not a moment longer.
        if (Date.now() >= leaseValidUntil) lost.abort(error);
        else log.warn({ err: error }, 'stream lease renewal failed; retrying');
      });
  }, options.leaseTtlMs / 3);
  const target = await getTargetWithSecret(deps.pool, stream.targetId);
  const store = await openStore(target.storeUrl);
  const destination: SegmentDestination = {
    store,
    targetName: target.name,
    targetId: target.id,
    slot: stream.slotName,
    generation: stream.generation,
    compression: typeof target.options.compression === 'string' ? parseCompression(target.options.compression) : defaultCompression,
    recipients: (target.options.encryptTo ?? []).map(parseRecipient),
  };
  const state: SessionState = { confirmedLsn: stream.confirmedLsn, stopped: false };
  let retryMs = options.retryDelayMs ?? 1000;
  try {
    log.info('streaming');
    while (!options.signal.aborted && !lost.signal.aborted) {
      try {
        await streamSession({ pool: deps.pool, log, stream, lease, destination, databaseUrl: target.databaseUrl, state, options, lost: lost.signal });
        retryMs = options.retryDelayMs ?? 1000;
      } catch (error) {
        if (pgErrorCode(error) === OBJECT_IN_USE) log.info('the slot streams to another connection still; trying again');
        else if (isBackstopError(error, 'LEASE_LOST')) lost.abort(error);
        else log.warn({ err: error }, 'streaming session ended; starting again from the stored position');
      }
      if (state.stopped) return 'stream_stopped';
      if (options.signal.aborted || lost.signal.aborted) break;
      // Sessions that keep failing (the store down) never reach the guard inside them: the
      // slot then grows fastest, so it is measured between sessions too.
      if ((await guardSourceSlot({ pool: deps.pool, log }, stream, target.databaseUrl)) !== 'ok') return 'stream_stopped';
      await delay(retryMs, undefined, { signal: AbortSignal.any([options.signal, lost.signal]) }).catch(() => {});
      retryMs = Math.min(retryMs * 2, 15_000);
    }
    if (lost.signal.aborted) {
      log.warn('stream lease lost: stopped without confirming anything more');
      return 'lease_lost';
    }
    return 'stopped';
  } finally {
    clearInterval(renewing);
    if (!lost.signal.aborted) await releaseStreamLease(deps.pool, lease).catch((error) => log.warn({ err: error }, 'could not release the stream lease'));
    await store.close().catch(() => {});
  }
}

interface SessionState {
  /** The newest position stored and recorded in the catalog (null: nothing yet; the slot's own position). */
  confirmedLsn: string | null;
  /** The slot guard stopped the stream. */
  stopped: boolean;
}

interface SessionContext {
  pool: Pool;
  log: Logger;
  stream: StreamRecord;
  lease: StreamLease;
  destination: SegmentDestination;
  databaseUrl: string;
  state: SessionState;
  options: StreamerOptions;
  lost: AbortSignal;
}

/**
 * One replication connection's life. Messages are decoded as they arrive (in order, together
 * with the source's keepalives, which is why the library's flow control is not used: it lets
 * keepalives overtake queued data); segments are stored one at a time, each ending with the
 * catalog's record of it and only then the confirmation to the slot. Anything failing ends
 * the session without confirming: the slot sends it all again to the next.
 */
async function streamSession(ctx: SessionContext): Promise<void> {
  const { stream, log, state } = ctx;
  const source = new pg.Client({ connectionString: ctx.databaseUrl, application_name: 'backstop:stream', connectionTimeoutMillis: 15_000 });
  source.on('error', () => {});
  await source.connect();
  const ended = new AbortController();
  const sessionSignal = AbortSignal.any([ended.signal, ctx.lost]);
  const service = new LogicalReplicationService(
    { connectionString: ctx.databaseUrl, application_name: `backstop:stream`, connectionTimeoutMillis: 15_000 },
    // No automatic confirmation, ever: the library would confirm whatever it received.
    { acknowledge: { auto: false, timeoutSeconds: 0 } },
  );
  let failure: unknown = null;
  const end = (error?: unknown) => {
    if (error !== undefined) failure ??= error;
    ended.abort();
    void service.stop().catch(() => {});
  };
  const stopOnLoss = () => end();
  ctx.lost.addEventListener('abort', stopOnLoss, { once: true });
  try {
    const slot = await source.query<{ confirmed: string | null }>('select confirmed_flush_lsn::text as confirmed from pg_replication_slots where slot_name = $1', [stream.slotName]);
    if (!slot.rows[0]?.confirmed) {
      await runGuard(ctx);
      throw new Error(`the replication slot ${stream.slotName} does not exist on the source`);
    }
    const slotLsn = slot.rows[0].confirmed;
    const startLsn = state.confirmedLsn ?? slotLsn;
    // What the slot may be told is flushed: never less than it already knows.
    let reported = compareLsn(startLsn, slotLsn) > 0 ? startLsn : slotLsn;
    const builder = new SegmentBuilder(startLsn);
    const maxPendingBytes = Math.max(2 * stream.segmentBytes, 64 << 20);
    let pendingSince: number | null = null;
    let flushing: Promise<void> | null = null;
    let flushAgain = false;
    let lastStatusAt = 0;
    // Often enough that a quiet source's recovery point (caught_up_at) stays well within its bound.
    const statusEveryMs = ctx.options.statusIntervalMs ?? Math.min(10_000, stream.maxRpoSeconds * 250);

    let caughtUpRecordedAt = 0;
    /** `ping`: the source answers with a keepalive at once, which tells whether everything is stored (see the heartbeat handler). */
    const sendStatus = (ping = false) => {
      lastStatusAt = Date.now();
      void confirmFlush(service, reported, ping).catch(() => {});
    };

    const flushOnce = async () => {
      const segment = builder.take();
      pendingSince = builder.hasPending() ? Date.now() : null;
      if (!segment) return;
      const sequences = await sampleSequences(source);
      sessionSignal.throwIfAborted();
      const stored = await writeSegment({ ...ctx.destination }, segment, sequences, sessionSignal);
      const schemaChange = schemaChangeOf(segment);
      const rebase = await recordSegment(
        ctx.pool,
        ctx.lease,
        stored,
        schemaChange === undefined
          ? undefined
          : (client) =>
              queueBaseBackup(client, {
                targetId: stream.targetId,
                trigger: 'schema_change',
                ...schemaChange,
                runDeadlineMs: ctx.options.runDeadlineMs ?? DEFAULT_RUN_DEADLINE_MS,
              }),
      );
      if (rebase) {
        log.warn(
          { runId: rebase.run.id, queued: rebase.queued },
          rebase.queued
            ? `${schemaChange?.reason}: base backup ${rebase.run.id} queued`
            : `${schemaChange?.reason}: backup ${rebase.run.id}, already ${rebase.run.status}, becomes the new base`,
        );
      }
      state.confirmedLsn = segment.endLsn;
      if (compareLsn(segment.endLsn, reported) > 0) reported = segment.endLsn;
      log.info({ startLsn: segment.startLsn, endLsn: segment.endLsn, transactions: segment.transactions, size: stored.manifest.file.size }, 'segment stored');
      if (!ended.signal.aborted) sendStatus();
      await runGuard(ctx);
    };
    const flush = (): Promise<void> => {
      if (flushing) {
        flushAgain = true;
        return flushing;
      }
      flushing = flushOnce()
        .catch((error) => end(error))
        .finally(() => {
          flushing = null;
          resumeReading();
          if (flushAgain && !ended.signal.aborted) {
            flushAgain = false;
            void flush();
          }
        });
      return flushing;
    };

    // The library's own flow control lets keepalives overtake queued changes (a keepalive's
    // position must never be confirmed before the changes it follows are stored), so reading is
    // paused at the socket instead.
    let paused = false;
    const socket = () => (service as unknown as { _connection?: { stream?: { pause?: () => void; resume?: () => void } } })._connection?.stream;
    const pauseReading = () => {
      if (paused) return;
      paused = true;
      socket()?.pause?.();
    };
    const resumeReading = () => {
      if (!paused) return;
      paused = false;
      if (!ended.signal.aborted) socket()?.resume?.();
    };

    service.on('error', (error: Error) => end(error));
    service.on('data', (_lsn: string, message) => {
      if (ended.signal.aborted) return;
      try {
        builder.apply(message);
      } catch (error) {
        end(error);
        return;
      }
      if (message.tag !== 'commit' || !builder.hasPending()) return;
      pendingSince ??= Date.now();
      if (builder.pendingBytes() >= stream.segmentBytes) {
        void flush();
        // A full segment waits while another is written: stop reading the socket, so that the
        // source holds the rest (TCP backpressure) instead of this process's memory. Without
        // it, a streamer catching up on a backlog read faster than it could store, hit the
        // bound below again and again, and never caught up.
        if (flushing) pauseReading();
      }
      // The store is slower than the source writes: rather than hold ever more in memory, start
      // again later from the stored position (the slot keeps everything until confirmed).
      if (builder.pendingBytes() > maxPendingBytes && flushing) end(new Error(`more than ${maxPendingBytes} bytes of changes wait for the store`));
    });
    service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => {
      // Caught up with nothing unstored: every transaction committed before the keepalive's
      // position has arrived (messages and keepalives come in order) and is stored or had
      // nothing to keep. Confirming it lets the source recycle WAL while published tables are quiet.
      if (!builder.inTransaction() && !builder.hasPending() && flushing === null) {
        if (compareLsn(lsn, reported) > 0) reported = lsn;
        // Caught up: the recovery point is now, though nothing was committed (see migration 023).
        if (Date.now() - caughtUpRecordedAt >= statusEveryMs / 2) {
          caughtUpRecordedAt = Date.now();
          void recordCaughtUp(ctx.pool, ctx.lease).catch((error) => log.warn({ err: error }, 'could not record the stream as caught up'));
        }
      }
      if (shouldRespond) sendStatus();
    });

    const guardEveryMs = ctx.options.guardIntervalMs ?? 10_000;
    let guardedAt = Date.now();
    let guarding: Promise<void> | null = null;
    const ticking = setInterval(() => {
      if (ended.signal.aborted) return;
      if (pendingSince !== null && Date.now() - pendingSince >= stream.segmentSeconds * 1000) void flush();
      if (Date.now() - lastStatusAt >= statusEveryMs) sendStatus(true);
      if (Date.now() - guardedAt >= guardEveryMs && flushing === null && guarding === null) {
        guardedAt = Date.now();
        guarding = runGuard(ctx)
          .catch(() => {})
          .finally(() => (guarding = null));
      }
    }, 200);
    const stopCleanly = () => {
      // Store what arrived whole, then end: the open transaction (if any) goes to the next streamer.
      void (async () => {
        await flushing;
        if (!ended.signal.aborted) await flush();
        end();
      })();
    };
    ctx.options.signal.addEventListener('abort', stopCleanly, { once: true });
    if (ctx.options.signal.aborted) stopCleanly();
    try {
      await service.subscribe(new TextPgoutputPlugin({ protoVersion: 1, publicationNames: [stream.publicationName] }), stream.slotName, startLsn);
      // The connection ended: whatever was in flight is settled before the next session starts from state.confirmedLsn.
      await flushing;
    } finally {
      clearInterval(ticking);
      ctx.options.signal.removeEventListener('abort', stopCleanly);
      ended.abort();
      await flushing;
      await guarding;
    }
    if (failure !== null) throw failure;
  } catch (error) {
    throw failure ?? error;
  } finally {
    ctx.lost.removeEventListener('abort', stopOnLoss);
    await service.stop().catch(() => {});
    await service.destroy().catch(() => {});
    await source.end().catch(() => {});
  }
}

/**
 * A guard pass from within a session, on a connection of its own: dropping the slot ends the
 * session's connections (its walsender is terminated first), which must not cut the pass short
 * between the drop and the record of why.
 */
async function runGuard(ctx: SessionContext): Promise<void> {
  const outcome = await guardSourceSlot({ pool: ctx.pool, log: ctx.log }, ctx.stream, ctx.databaseUrl);
  if (outcome === 'stopped') {
    ctx.state.stopped = true;
    throw new Error(`the stream of ${ctx.stream.targetName} stopped: its slot is gone`);
  }
}

/**
 * Tells the slot that everything before `lsn` is flushed. The library's acknowledge takes the
 * last byte received and sends it plus one, as the protocol's "last byte + 1"; a commit's end
 * LSN is already that (the first byte after the commit record), and the next transaction's
 * commit record may begin exactly there: confirming one byte more would make the slot skip it.
 */
export async function confirmFlush(service: LogicalReplicationService, lsn: string, ping = false): Promise<void> {
  await service.acknowledge(bigIntToLsn(lsnToBigInt(lsn) - 1n), ping);
}
