import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { runStatuses } from '../core/runState.ts';
import { listStreamRpo } from '../db/continuousStreams.ts';
import type { Queryable } from '../db/pool.ts';
import { countUnknownBackups } from '../db/retention.ts';
import type { ReapedRun } from '../db/runLeases.ts';
import { countRunsByStatus, listFinishedRunsAfter } from '../db/runListing.ts';

export interface ServerMetrics {
  registry: Registry;
  /** For the scheduler: `schedulerActions.inc({ action: 'enqueued' })` and the like. */
  schedulerActions: Counter<'action'>;
  /** The reaper's `onReaped` callback. */
  recordReaped(runs: ReapedRun[]): void;
  recordRequest(input: { method: string; route: string; status: number; seconds: number }): void;
  /** Reads the catalog (run counts, newly finished runs); called before each scrape. */
  refresh(): Promise<void>;
}

const FINISHED_BATCH = 5_000;
const FINISHED_BATCHES_PER_SCRAPE = 4;

/**
 * One registry per server. Run counts and the duration and size histograms come from the
 * catalog, so they describe every run whoever executed it; reaper and scheduler counters count
 * what this process did.
 */
export function createServerMetrics(db: Queryable, options: { processMetrics?: boolean } = {}): ServerMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const catalogUp = new Gauge({ name: 'backstop_catalog_up', help: '1 when the last scrape could read the catalog, 0 otherwise.', registers });
  const runs = new Gauge({ name: 'backstop_runs', help: 'Runs in the catalog, by status.', labelNames: ['status'], registers });
  const unknownBackups = new Gauge({
    name: 'backstop_unknown_backups',
    help: "Complete backups in a target's store folder that no catalog row vouches for, as the last prune pass found them: kept until imported (backstop import) or deleted (backstop prune --delete-unknown).",
    labelNames: ['target'],
    registers,
  });
  const rpo = new Gauge({
    name: 'backstop_continuous_rpo_seconds',
    help: "A continuous target's recovery point objective as it stands: seconds since the newest instant before which every commit is stored in its change archive.",
    labelNames: ['target', 'state'],
    registers,
  });
  const retainedWal = new Gauge({
    name: 'backstop_continuous_slot_retained_wal_bytes',
    help: "WAL a continuous target's replication slot holds back on the source, as the slot guard last measured it.",
    labelNames: ['target'],
    registers,
  });
  const durations = new Histogram({
    name: 'backstop_run_duration_seconds',
    help: 'Time from claim to finish of finished runs, by kind and final status.',
    labelNames: ['kind', 'status'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600],
    registers,
  });
  const bytes = new Histogram({
    name: 'backstop_run_artifact_bytes',
    help: 'Stored size (files and manifest) of the artifacts of finished runs.',
    labelNames: ['kind'],
    // 1 KiB to 1 TiB, ×4 per bucket.
    buckets: Array.from({ length: 16 }, (_, index) => 1024 * 4 ** index),
    registers,
  });
  const leaseExpiries = new Counter({
    name: 'backstop_lease_expiries_total',
    help: 'Runs whose runner stopped heartbeating, found by the reaper in this process.',
    registers,
  });
  const reaperActions = new Counter({
    name: 'backstop_reaper_actions_total',
    help: 'Runs moved by the reaper in this process: timed_out or requeued, by reason.',
    labelNames: ['action', 'reason'],
    registers,
  });
  const schedulerActions = new Counter({
    name: 'backstop_scheduler_actions_total',
    help: 'Actions of the scheduler in this process, by action.',
    labelNames: ['action'],
    registers,
  });
  const requests = new Histogram({
    name: 'backstop_http_request_duration_seconds',
    help: 'HTTP requests served, by method, route template and status.',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });

  let watermark: { finishedUs: number; id: string } | null = null;
  let refreshing: Promise<void> | null = null;

  const readCatalog = async () => {
    try {
      const counts = await countRunsByStatus(db);
      for (const status of runStatuses) runs.set({ status }, counts[status] ?? 0);
      const unknown = await countUnknownBackups(db);
      unknownBackups.reset();
      for (const [target, count] of unknown) unknownBackups.set({ target }, count);
      const streams = await listStreamRpo(db);
      rpo.reset();
      retainedWal.reset();
      for (const stream of streams) {
        if (stream.state !== 'stopped') rpo.set({ target: stream.targetName, state: stream.state }, Math.round(stream.rpoSeconds * 1000) / 1000);
        if (stream.retainedWalBytes !== null) retainedWal.set({ target: stream.targetName }, stream.retainedWalBytes);
      }
      // Runs are read in finish order from a watermark, so each finished run is observed once
      // by this process, however often it is scraped; a large history is caught up in batches.
      for (let batch = 0; batch < FINISHED_BATCHES_PER_SCRAPE; batch++) {
        const finished = await listFinishedRunsAfter(db, watermark, FINISHED_BATCH);
        for (const run of finished) {
          if (run.durationSeconds !== null) durations.observe({ kind: run.kind, status: run.status }, run.durationSeconds);
          if (run.artifactBytes !== null) bytes.observe({ kind: run.kind }, run.artifactBytes);
          watermark = { finishedUs: run.finishedUs, id: run.id };
        }
        if (finished.length < FINISHED_BATCH) break;
      }
      catalogUp.set(1);
    } catch {
      // A scrape must still answer when the catalog is down: say so instead of failing.
      runs.reset();
      unknownBackups.reset();
      rpo.reset();
      retainedWal.reset();
      catalogUp.set(0);
    }
  };

  return {
    registry,
    schedulerActions,
    recordReaped(reaped) {
      for (const run of reaped) {
        reaperActions.inc({ action: run.status === 'queued' ? 'requeued' : 'timed_out', reason: run.errorCode });
        if (run.errorCode === 'LEASE_EXPIRED') leaseExpiries.inc();
      }
    },
    recordRequest({ method, route, status, seconds }) {
      requests.observe({ method, route, status: String(status) }, seconds);
    },
    refresh() {
      // Concurrent scrapes share one read, so no finished run is observed twice.
      refreshing ??= readCatalog().finally(() => (refreshing = null));
      return refreshing;
    },
  };
}
