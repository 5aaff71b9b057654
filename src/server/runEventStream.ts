import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isTerminal } from '../core/runState.ts';
import type { Queryable } from '../db/pool.ts';
import { getRun, listRunEvents, type RunEvent } from '../db/runs.ts';

export interface EventStreamOptions {
  /** How often an open stream looks for new events in the catalog. */
  pollIntervalMs: number;
  /** Comment lines that keep proxies from closing an idle stream. */
  heartbeatMs: number;
}

export interface EventStreams {
  /** Takes over the response and streams the run's events after `afterId`. */
  open(request: FastifyRequest, reply: FastifyReply, runId: string, afterId: number): void;
  openCount(): number;
  /** Ends every stream (shutdown); clients reconnect elsewhere with Last-Event-ID. */
  closeAll(): void;
}

/** The JSON of one event, as the JSON route serializes it. */
export function eventJson(event: RunEvent) {
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

/**
 * Server-Sent Events of a run: events after `afterId` (Last-Event-ID) are replayed, then new
 * ones are sent as the catalog records them (polled: every transition is an insert into
 * run_events, whichever process made it). Each event's SSE id is its run_events id. When the
 * run is terminal and its last event was sent, an `end` event closes the stream; a client that
 * reconnects after that gets 204, which tells EventSource to stop.
 */
export function createEventStreams(db: Queryable, log: Logger, options: EventStreamOptions): EventStreams {
  const closers = new Set<() => void>();

  const open = (request: FastifyRequest, reply: FastifyReply, runId: string, afterId: number) => {
    reply.hijack();
    const response = reply.raw;
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    response.write('retry: 2000\n\n');
    let lastId = afterId;
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
      wake?.();
      if (!response.writableEnded) response.end();
    };
    closers.add(close);
    response.on('close', close);

    const send = (event: RunEvent) => {
      response.write(`id: ${event.id}\ndata: ${JSON.stringify(eventJson(event))}\n\n`);
      lastId = event.id;
    };

    void (async () => {
      try {
        while (!closed) {
          // Status first, events second: when the status read is terminal, the events read
          // after it holds every event up to the terminal one (they are written together).
          const run = await getRun(db, runId);
          const events = await listRunEvents(db, runId, lastId);
          if (closed) return;
          for (const event of events) send(event);
          if (isTerminal(run.status)) {
            response.write(`event: end\ndata: ${JSON.stringify({ runId, status: run.status })}\n\n`);
            return;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            pollTimer = setTimeout(resolve, options.pollIntervalMs);
          });
          wake = null;
        }
      } catch (error) {
        // The client reconnects with Last-Event-ID and misses nothing.
        request.log.warn({ err: error, runId }, 'event stream stopped: catalog read failed');
        if (!closed) response.write(': catalog unavailable; reconnect\n\n');
      } finally {
        close();
      }
    })();
    log.debug({ runId, afterId }, 'event stream opened');
  };

  return {
    open,
    openCount: () => closers.size,
    closeAll() {
      for (const close of [...closers]) close();
    },
  };
}
