import { setTimeout as sleep } from 'node:timers/promises';
import { createRun } from '../../src/db/runRecords.ts';
import type { ChaosEnvironment } from './environment.ts';
import type { PlannedRun } from './plan.ts';
import type { ManagedProcess, Supervisor } from './processes.ts';

/**
 * The work: runs queued at their planned moments (through the server's API, or by SQL as an
 * application would), and the CI-job side of external targets: a `backstop run RUN_ID`
 * process for each of their queued runs.
 */

export interface QueuedRun {
  index: number;
  target: string;
  runId: string;
  via: 'api' | 'sql';
  /** The API was planned but did not answer in time; queued by SQL instead. */
  apiFallback: boolean;
}

const API_TIMEOUT_MS = 3000;
const SQL_RETRY_MS = 500;
const SQL_GIVE_UP_MS = 120_000;

export async function feedRuns(
  runs: readonly PlannedRun[],
  deps: { env: ChaosEnvironment; supervisor: Supervisor; startedAt: number; runDeadlineMs: number; log: (message: string) => void; signal: AbortSignal },
): Promise<QueuedRun[]> {
  const { env } = deps;
  const { rows } = await env.pool.query<{ id: string; name: string }>('select id, name from backstop.targets');
  const targetIds = new Map(rows.map((row) => [row.name, row.id]));
  const queued: QueuedRun[] = [];
  for (const run of runs) {
    await sleep(Math.max(0, deps.startedAt + run.at - Date.now()), undefined, { signal: deps.signal });
    let runId: string | null = null;
    const url = run.via === 'api' ? deps.supervisor.serverUrl() : null;
    if (url) {
      try {
        const response = await fetch(`${url}/api/v1/runs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${env.apiToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ target: run.target }),
          signal: AbortSignal.timeout(API_TIMEOUT_MS),
        });
        if (response.status === 201) runId = ((await response.json()) as { id: string }).id;
      } catch {
        // Not answered in time (a stopped or killed server, a catalog outage): queue by SQL.
      }
    }
    const giveUpAt = Date.now() + SQL_GIVE_UP_MS;
    while (runId === null) {
      try {
        runId = (await createRun(env.pool, { targetId: targetIds.get(run.target)!, trigger: 'chaos', runDeadlineMs: deps.runDeadlineMs })).id;
      } catch (error) {
        if (Date.now() > giveUpAt) throw new Error(`could not queue run ${run.index} for ${SQL_GIVE_UP_MS / 1000} s: ${(error as Error).message}`);
        await sleep(SQL_RETRY_MS, undefined, { signal: deps.signal });
      }
    }
    queued.push({ index: run.index, target: run.target, runId, via: run.via, apiFallback: run.via === 'api' && url === null });
  }
  deps.log(`all ${runs.length} runs queued`);
  return queued;
}

export interface RunnerLauncher {
  launched(): number;
  stop(): Promise<void>;
}

const LAUNCH_INTERVAL_MS = 250;
/** After a runner failed (catalog down at start-up, run taken…), wait before the next one. */
const RELAUNCH_BACKOFF_MS = 1000;

/**
 * Plays the CI job of external targets: whenever such a target has a queued run and nothing
 * executing, starts `backstop run` for its oldest queued run (again after a failed attempt,
 * as a retried job would).
 */
export function startRunnerLauncher(deps: { env: ChaosEnvironment; supervisor: Supervisor }): RunnerLauncher {
  const byTarget = new Map<string, ManagedProcess>();
  const lastEnded = new Map<string, number>();
  let launched = 0;
  let stopped = false;

  const tick = async () => {
    const { rows } = await deps.env.pool.query<{ id: string; target: string }>(
      `select distinct on (r.target_id) r.id, t.name as target
       from backstop.runs r join backstop.targets t on t.id = r.target_id
       where t.executor_config is not null and r.status = 'queued' and r.cancel_requested_at is null
         and not exists (select 1 from backstop.runs x where x.target_id = r.target_id and x.status in ('dispatched', 'running', 'cancelling'))
       order by r.target_id, r.created_at`,
    );
    for (const row of rows) {
      const previous = byTarget.get(row.target);
      if (previous && previous.exit === null && !previous.stopped) continue;
      if (Date.now() - (lastEnded.get(row.target) ?? 0) < RELAUNCH_BACKOFF_MS) continue;
      const runner = deps.supervisor.startRunner(row.id);
      launched++;
      byTarget.set(row.target, runner);
      void runner.exited.then((exit) => {
        if (exit.code !== 0) lastEnded.set(row.target, Date.now());
      });
    }
  };

  const loop = (async () => {
    while (!stopped) {
      await tick().catch(() => {});
      await sleep(LAUNCH_INTERVAL_MS);
    }
  })();

  return {
    launched: () => launched,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
