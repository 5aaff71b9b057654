import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { BackstopError } from '../core/errors.ts';
import { isLiveProgress, PROGRESS_REPORT_MS, readStoredProgress } from '../core/runProgress.ts';
import { isTerminal } from '../core/runState.ts';
import { listLiveProgress } from '../db/runProgress.ts';
import type { Queryable } from '../db/pool.ts';
import { listEventsAfter, type FeedEvent } from '../db/runEventFeed.ts';
import { listRunEvents, type RunEventRecord } from '../db/runEvents.ts';
import { getRun } from '../db/runRecords.ts';
import { securityHeaders } from './securityHeaders.ts';

export interface EventStreamOptions {
  /** How often an open stream looks for new events in the catalog. */
  pollIntervalMs: number;
  /** Comment lines that keep proxies from closing an idle stream. */
  heartbeatMs: number;
  /** How long the feed of all runs waits for a missing event id before skipping it (default 3 s). */
  gapWaitMs?: number;
  /** Streams one API token may hold open at once; one more answers 429 (default 20). */
  maxStreamsPerToken?: number;
  /**
   * Whether the request's token still opens the stream, asked before every poll: a token
   * revoked while its stream is open stops receiving at the next poll. Default: always.
   */
  stillAuthorized?: (request: FastifyRequest) => Promise<boolean>;
}

export const DEFAULT_MAX_STREAMS_PER_TOKEN = 20;

export interface EventStreams {
  /** Takes over the response and streams the run's events after `afterId`. */
  open(request: FastifyRequest, reply: FastifyReply, runId: string, afterId: number): void;
  /** Takes over the response and streams every run's events after `afterId`, until closed. */
  openFeed(request: FastifyRequest, reply: FastifyReply, afterId: number): void;
  openCount(): number;
  /** Ends every stream (shutdown); clients reconnect elsewhere with Last-Event-ID. */
  closeAll(): void;
}

/** The JSON of one event, as the JSON route serializes it. */
export function eventJson(event: RunEventRecord) {
  return {
    id: event.id,
    runId: event.runId,
    at: event.at,
    attempt: event.attempt,
    kind: event.kind,
    status: event.status,
    message: event.message,
    data: event.data,
  };
}

/** An event of the feed of all runs: the run's event plus its target and kind. */
export function feedEventJson(event: FeedEvent) {
  return { ...eventJson(event), targetName: event.targetName, runKind: event.runKind };
}

const FEED_PAGE = 500;

interface SseConnection {
  closed(): boolean;
  write(text: string): void;
  /** Waits one poll interval, or less when the stream closes. */
  pause(): Promise<void>;
  close(): void;
}

/**
 * Server-Sent Events from the catalog. Every transition is an insert into run_events, whichever
 * process made it, so the streams poll: no process has to tell this one anything.
 *
 * A run's stream replays its events after `afterId` (Last-Event-ID), then sends new ones; each
 * event's SSE id is its run_events id. Between them, `progress` events (no id: they are not
 * replayed) carry the run's progress when it changes: its runner's, or a restore's of its
 * backup. When the run is terminal, no restore of it shows progress and its last event was
 * sent, an `end` event closes the stream; a client that reconnects after that gets 204, which
 * tells EventSource to stop.
 *
 * The feed of all runs does the same across runs and never ends by itself; its `progress`
 * events (no id either) carry the progress of every run with work under way, each when it
 * changes, read at most once per PROGRESS_REPORT_MS. Ids come from one
 * sequence but commit out of order: an insert that took id 10 may commit after id 11 was read.
 * So the feed stops at a gap and waits up to `gapWaitMs` for it to fill (event inserts are
 * single statements or short transactions) before treating it as a rolled-back or deleted
 * event; a gap before an event recorded longer ago than that is not waited for.
 */
export function createEventStreams(db: Queryable, log: Logger, options: EventStreamOptions): EventStreams {
  const closers = new Set<() => void>();
  const gapWaitMs = options.gapWaitMs ?? 3_000;
  const maxPerToken = options.maxStreamsPerToken ?? DEFAULT_MAX_STREAMS_PER_TOKEN;
  const stillAuthorized = options.stillAuthorized ?? (async () => true);
  /** Open streams by token id: one token cannot hold the server's connections and polls. */
  const perToken = new Map<string, number>();

  /** Counts the stream against its token, or refuses it (before the response is taken over). */
  const admit = (request: FastifyRequest): (() => void) => {
    const principal = request.principal;
    if (principal?.kind !== 'api' && principal?.kind !== 'user') return () => {};
    // A person's sign-in counts as one holder, as a token does.
    const holder = principal.kind === 'api' ? principal.tokenId : principal.sessionId;
    const open = perToken.get(holder) ?? 0;
    if (open >= maxPerToken) {
      throw new BackstopError(
        'TOO_MANY_STREAMS',
        `${principal.kind === 'api' ? `Token "${principal.name}"` : principal.name} already holds ${open} open event streams, the most one token may (BACKSTOP_MAX_STREAMS_PER_TOKEN). Close some (each dashboard tab holds one or two) or poll the JSON form of the route instead.`,
      );
    }
    perToken.set(holder, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (perToken.get(holder) ?? 1) - 1;
      if (left <= 0) perToken.delete(holder);
      else perToken.set(holder, left);
    };
  };

  const connect = (request: FastifyRequest, reply: FastifyReply): SseConnection => {
    const release = admit(request);
    reply.hijack();
    const response = reply.raw;
    response.writeHead(200, {
      ...securityHeaders,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    response.write('retry: 2000\n\n');
    let closed = false;
    let wake: (() => void) | null = null;
    let pollTimer: NodeJS.Timeout | undefined;
    const heartbeat = setInterval(() => response.write(': heartbeat\n\n'), options.heartbeatMs);
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      clearTimeout(pollTimer);
      closers.delete(close);
      release();
      wake?.();
      if (!response.writableEnded) response.end();
    };
    closers.add(close);
    response.on('close', close);
    return {
      closed: () => closed,
      write: (text) => void response.write(text),
      pause: async () => {
        await new Promise<void>((resolve) => {
          wake = resolve;
          pollTimer = setTimeout(resolve, options.pollIntervalMs);
        });
        wake = null;
      },
      close,
    };
  };

  /**
   * Runs `loop` until it returns or the stream closes; a failed catalog read ends the stream.
   * `loop` calls `authorized()` on every poll, between its reads and its writes: false (the
   * token was revoked) ends the stream with nothing more sent; the client's reconnect gets 401.
   */
  const drive = (request: FastifyRequest, sse: SseConnection, what: Record<string, unknown>, loop: (authorized: () => Promise<boolean>) => Promise<void>) => {
    const authorized = async () => {
      if (await stillAuthorized(request)) return true;
      if (!sse.closed()) sse.write(': token revoked; the stream ends\n\n');
      request.log.info(what, 'event stream ended: its token no longer opens it');
      return false;
    };
    void (async () => {
      try {
        await loop(authorized);
      } catch (error) {
        // The client reconnects with Last-Event-ID and misses nothing.
        request.log.warn({ err: error, ...what }, 'event stream stopped: catalog read failed');
        if (!sse.closed()) sse.write(': catalog unavailable; reconnect\n\n');
      } finally {
        sse.close();
      }
    })();
    log.debug(what, 'event stream opened');
  };

  const open = (request: FastifyRequest, reply: FastifyReply, runId: string, afterId: number) => {
    const sse = connect(request, reply);
    let lastId = afterId;
    let lastProgress = '';
    drive(request, sse, { runId, afterId }, async (authorized) => {
      while (!sse.closed()) {
        // Status first, events second: when the status read is terminal, the events read
        // after it holds every event up to the terminal one (they are written together).
        const run = await getRun(db, runId);
        const events = await listRunEvents(db, runId, lastId);
        // The token is checked after the reads: whatever they saw was recorded before a
        // revocation that this check does not see, so nothing recorded after one is sent.
        if (!(await authorized()) || sse.closed()) return;
        for (const event of events) {
          sse.write(`id: ${event.id}\ndata: ${JSON.stringify(eventJson(event))}\n\n`);
          lastId = event.id;
        }
        // A restore of a finished backup keeps its stream open for as long as it shows progress.
        const live = isLiveProgress(run.progress, !isTerminal(run.status));
        const progress = live ? JSON.stringify({ runId, status: run.status, heartbeatAt: run.heartbeatAt, progress: run.progress }) : '';
        if (progress !== lastProgress && progress !== '') sse.write(`event: progress\ndata: ${progress}\n\n`);
        lastProgress = progress;
        if (isTerminal(run.status) && !live) {
          sse.write(`event: end\ndata: ${JSON.stringify({ runId, status: run.status })}\n\n`);
          return;
        }
        await sse.pause();
      }
    });
  };

  const openFeed = (request: FastifyRequest, reply: FastifyReply, afterId: number) => {
    const sse = connect(request, reply);
    let lastId = afterId;
    let gapSeenAt: number | null = null;
    // Tells the client where the feed starts, as an id it can resume from.
    sse.write(`id: ${afterId}\nevent: ready\ndata: ${JSON.stringify({ lastEventId: afterId })}\n\n`);
    const progressSent = new Map<string, string>();
    let progressReadAt = -Infinity;
    drive(request, sse, { feed: 'all runs', afterId }, async (authorized) => {
      while (!sse.closed()) {
        const events = await listEventsAfter(db, lastId, FEED_PAGE, gapWaitMs);
        const live = performance.now() - progressReadAt >= PROGRESS_REPORT_MS ? await listLiveProgress(db) : null;
        if (live) progressReadAt = performance.now();
        if (!(await authorized()) || sse.closed()) return;
        for (const event of events) {
          if (event.id !== lastId + 1 && !event.settled) {
            gapSeenAt ??= performance.now();
            if (performance.now() - gapSeenAt < gapWaitMs) break;
          }
          gapSeenAt = null;
          sse.write(`id: ${event.id}\ndata: ${JSON.stringify(feedEventJson(event))}\n\n`);
          lastId = event.id;
        }
        for (const item of live ?? []) {
          const progress = readStoredProgress(item.progress);
          if (!progress) continue;
          const text = JSON.stringify({ runId: item.runId, targetName: item.targetName, runKind: item.runKind, status: item.status, progress });
          if (progressSent.get(item.runId) === text) continue;
          progressSent.set(item.runId, text);
          sse.write(`event: progress\ndata: ${text}\n\n`);
        }
        if (live) for (const runId of progressSent.keys()) if (!live.some((item) => item.runId === runId)) progressSent.delete(runId);
        // A full page means more are waiting: read on at once.
        if (events.length < FEED_PAGE || gapSeenAt !== null) await sse.pause();
      }
    });
  };

  return {
    open,
    openFeed,
    openCount: () => closers.size,
    closeAll() {
      for (const close of [...closers]) close();
    },
  };
}
