import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { claimStream, listGuardedStreams, type StreamRecord } from '../db/continuousStreams.ts';
import type { Pool } from '../db/pool.ts';
import { getTargetWithSecret } from '../db/targets.ts';
import { guardSourceSlot } from '../continuous/slotGuard.ts';
import { runStreamer, type StreamerEnd } from '../continuous/streamer.ts';
import { startPeriodicTask } from './periodicTask.ts';

export interface StreamSupervisorOptions {
  /** Lease owner: the worker's or server's name. */
  owner: string;
  /** At most this many streamers in this process. */
  limit: number;
  /** How often free streams are looked for. */
  pollIntervalMs: number;
  /** Only this target's stream (`backstop stream TARGET`). */
  targetId?: string;
}

export interface StreamSupervisor {
  running(): number;
  /** Every streamer stores what it received whole, confirms it and ends; resolves when all have. */
  stop(): Promise<void>;
  /** Resolves when stopped, or (with one target) when its stream was stopped by the slot guard. */
  done: Promise<void>;
}

type Deps = { pool: Pool; log: Logger; config: Pick<Config, 'leaseTtlMs' | 'reaperIntervalMs' | 'runDeadlineMs'> };

/**
 * Runs continuous targets' streamers in this process: claims streams nobody holds (a free
 * lease, or one a dead streamer let expire) up to a limit and runs one streamer each. Streams
 * no streamer holds are still guarded: with the reaper's interval, their slots are measured
 * and dropped past their limit, so that a dead streamer and a failing store never endanger
 * the source's disk.
 */
export function startStreamSupervisor(deps: Deps, options: StreamSupervisorOptions): StreamSupervisor {
  const log = deps.log.child({ component: 'streams' });
  const streamers = new Map<string, { stop: AbortController; ended: Promise<StreamerEnd | null> }>();
  let stopping = false;
  let markDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (markDone = resolve));

  const claimPass = async () => {
    while (!stopping && streamers.size < options.limit) {
      let stream: StreamRecord | null;
      try {
        stream = await claimStream(deps.pool, { owner: options.owner, ttlMs: deps.config.leaseTtlMs, targetId: options.targetId, exceptTargets: [...streamers.keys()] });
      } catch (error) {
        log.warn({ err: error }, 'could not look for continuous streams; retrying');
        return;
      }
      if (!stream) return;
      start(stream);
    }
  };

  const start = (stream: StreamRecord) => {
    const stop = new AbortController();
    log.info({ target: stream.targetName, generation: stream.generation }, 'claimed continuous stream');
    const ended = runStreamer(deps, stream, {
      owner: options.owner,
      leaseTtlMs: deps.config.leaseTtlMs,
      runDeadlineMs: deps.config.runDeadlineMs,
      signal: stop.signal,
      guardIntervalMs: Math.max(deps.config.reaperIntervalMs, 1000),
    })
      .then((end) => {
        log.info({ target: stream.targetName, end }, 'streamer ended');
        // `backstop stream TARGET` has nothing left to do once the guard stopped its stream.
        if (end === 'stream_stopped' && options.targetId !== undefined) void supervisor.stop();
        return end;
      })
      .catch((error) => {
        log.error({ target: stream.targetName, err: error }, 'streamer failed');
        return null;
      })
      .finally(() => {
        streamers.delete(stream.targetId);
        if (!stopping) void claims.runOnce();
      });
    streamers.set(stream.targetId, { stop, ended });
  };

  /** Streams whose lease lapsed (their streamer is dead, or none runs): the slot guard's pass over them. */
  const guardPass = async () => {
    let streams: StreamRecord[];
    try {
      streams = await listGuardedStreams(deps.pool);
    } catch (error) {
      log.warn({ err: error }, 'could not list continuous streams to guard');
      return;
    }
    const unheld = streams.filter(
      (stream) =>
        !streamers.has(stream.targetId) &&
        (options.targetId === undefined || stream.targetId === options.targetId) &&
        (stream.leaseExpiresAt === null || Date.parse(stream.leaseExpiresAt) < Date.now()),
    );
    for (const stream of unheld) {
      const target = await getTargetWithSecret(deps.pool, stream.targetId).catch(() => null);
      if (!target) continue;
      await guardSourceSlot({ pool: deps.pool, log, runDeadlineMs: deps.config.runDeadlineMs }, stream, target.databaseUrl);
    }
  };

  const claims = startPeriodicTask(options.pollIntervalMs, claimPass, { firstDelayMs: 0 });
  const guards = startPeriodicTask(Math.max(deps.config.reaperIntervalMs, 250), guardPass, { firstDelayMs: 0 });

  let stopped: Promise<void> | null = null;
  const supervisor: StreamSupervisor = {
    running: () => streamers.size,
    done,
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        await Promise.all([claims.stop(), guards.stop()]);
        for (const streamer of streamers.values()) streamer.stop.abort();
        await Promise.all([...streamers.values()].map((streamer) => streamer.ended));
        markDone();
      })()),
  };
  return supervisor;
}
