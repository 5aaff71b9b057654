import { setTimeout as sleep } from 'node:timers/promises';
import type { Queryable } from '../../src/db/pool.ts';
import { reapBound, type Violation } from './catalogChecks.ts';
import type { Outage } from './faults.ts';

/**
 * Watches the catalog while the chaos runs: a run still active past the moment its lease or
 * hard deadline ran out, plus what the reaper is allowed (its interval + 1 s, restarted by a
 * catalog outage), is a broken promise even if it is reaped later. A requeued attempt leaves
 * no lease time behind, so this live look is the only check of its bound.
 */
export interface OverdueMonitor {
  stop(): Promise<Violation[]>;
  /** Passes that could read the catalog. */
  passes(): number;
}

export function startOverdueMonitor(db: Queryable, options: { reaperIntervalMs: number; outages: () => Outage[]; everyMs?: number }): OverdueMonitor {
  const seen = new Map<string, Violation>();
  let stopped = false;
  let passes = 0;
  const pass = async () => {
    const { rows } = await db.query<{ id: string; attempt: number; status: string; due_ms: number; now_ms: number; why: string }>(
      `select id, attempt, status,
              case when status in ('running', 'cancelling') and lease_expires_at < deadline_at then extract(epoch from lease_expires_at) * 1000
                   else extract(epoch from deadline_at) * 1000 end as due_ms,
              extract(epoch from now()) * 1000 as now_ms,
              case when status in ('running', 'cancelling') and lease_expires_at < deadline_at then 'lease expired' else 'hard deadline passed' end as why
       from backstop.runs
       where status in ('queued', 'dispatched', 'running', 'cancelling')
         and (deadline_at < now() - $1 * interval '1 millisecond'
              or (status in ('running', 'cancelling') and lease_expires_at < now() - $1 * interval '1 millisecond'))`,
      [options.reaperIntervalMs + 1000],
    );
    passes++;
    for (const row of rows) {
      const dueMs = Number(row.due_ms);
      const nowMs = Number(row.now_ms);
      const bound = reapBound(dueMs, options.reaperIntervalMs, options.outages());
      const key = `${row.id}/${row.attempt}`;
      if (nowMs > bound && !seen.has(key)) {
        seen.set(key, {
          invariant: 'terminates',
          runId: row.id,
          detail: `attempt ${row.attempt} still ${row.status} ${((nowMs - dueMs) / 1000).toFixed(2)} s after its ${row.why} (bound ${((bound - dueMs) / 1000).toFixed(2)} s)`,
        });
      }
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await pass().catch(() => {});
      await sleep(options.everyMs ?? 500);
    }
  })();
  return {
    passes: () => passes,
    async stop() {
      stopped = true;
      await loop;
      return [...seen.values()];
    },
  };
}
