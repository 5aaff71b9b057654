import { setTimeout as sleep } from 'node:timers/promises';
import { query, recreateSource, type ChaosEnvironment } from './environment.ts';
import { describePlannedFault, type PlannedFault } from './plan.ts';
import type { ManagedProcess, Supervisor } from './processes.ts';

/**
 * Strikes the planned faults at their moments, against the real processes and servers, and
 * records what each one hit: the run attempts that were in the hands of the process (or in
 * flight on the resource) when it struck, so the checker can time how long they took to end.
 */

export interface HeldAttempt {
  runId: string;
  attempt: number;
}

export interface FaultRecord {
  planned: PlannedFault;
  /** Wall clock (ms) when it struck; null when it was skipped. */
  at: number | null;
  /** Wall clock (ms) when it was over: SIGCONT sent, the server back, writes accepted again. */
  healedAt: number | null;
  /** What it hit, e.g. `worker-2 (pid 4242)` or `chaos_src_a`. */
  hit: string;
  /** Attempts held by the process, or in flight on the resource, when it struck. */
  held: HeldAttempt[];
  detail: string;
  skipped: string | null;
}

export interface Outage {
  from: number;
  to: number;
}

export interface FaultInjector {
  /** Every fault, once struck (or skipped) and healed. */
  done: Promise<FaultRecord[]>;
  /** Periods during which the catalog was down, wall clock ms. */
  catalogOutages(): Outage[];
  /** Whether the catalog is down right now (or was, less than `withinMs` ago). */
  catalogRecentlyDown(at: number, withinMs: number): boolean;
}

// A process restarting on a loaded machine takes seconds; faults aimed at it wait that long.
const WAIT_FOR_VICTIM_MS = 20_000;

/** PostgreSQL may take longer than pg_ctl's wait to come back on a loaded machine: retried, not fatal. */
async function startCatalog(env: ChaosEnvironment): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await env.startCatalog();
      return;
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
}

/** s3rver is a Node process that takes a while to start on a loaded machine: a slow start is retried, not fatal. */
async function restartS3(env: ChaosEnvironment): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await env.s3.restart();
      return;
    } catch (error) {
      if (attempt >= 4) throw error;
    }
  }
}

export function injectFaults(
  faults: readonly PlannedFault[],
  deps: { env: ChaosEnvironment; supervisor: Supervisor; startedAt: number; log: (message: string) => void; signal: AbortSignal },
): FaultInjector {
  const { env, supervisor, log } = deps;
  const outages: Outage[] = [];
  let catalogDownSince: number | null = null;
  // One fault at a time per resource: a second catalog restart waits for the first to heal.
  const locks = new Map<string, Promise<unknown>>();
  const exclusively = <T>(resource: string, work: () => Promise<T>): Promise<T> => {
    const previous = locks.get(resource) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(work);
    locks.set(resource, next);
    return next;
  };
  const since = (at: number) => `+${((at - deps.startedAt) / 1000).toFixed(1)} s`;
  /** Marks the moment a fault strikes, and says so at once (healing is logged when it is over). */
  const strikeNow = (record: FaultRecord): number => {
    const at = Date.now();
    record.at = at;
    log(`fault ${describePlannedFault(record.planned)} strikes at ${since(at)}: ${record.hit}, ${record.held.length} attempt(s) caught`);
    return at;
  };

  // Who holds what, looked at every half second: while the catalog is down, what a process
  // holds is known only from the last look.
  let lastHoldings: { id: string; attempt: number; pid: string }[] = [];
  let finished = false;
  const readHoldings = async () => {
    const { rows } = await env.pool.query<{ id: string; attempt: number; pid: string }>(
      `select id, attempt, split_part(claimed_by, ':', 2) as pid from backstop.runs where status in ('running', 'cancelling')`,
    );
    lastHoldings = rows;
    return rows;
  };
  const holdingsLoop = (async () => {
    while (!deps.signal.aborted && !finished) {
      await readHoldings().catch(() => {});
      await sleep(500);
    }
  })();
  /** Attempts whose lease names this process id (worker `host:pid:…`, runner `run:pid`). */
  const heldBy = async (pid: number): Promise<HeldAttempt[]> => {
    const rows = await readHoldings().catch(() => lastHoldings);
    return rows.filter((row) => row.pid === String(pid)).map((row) => ({ runId: row.id, attempt: row.attempt }));
  };
  const running = async (where = 'true', values: unknown[] = []): Promise<HeldAttempt[]> => {
    const { rows } = await env.pool.query<{ id: string; attempt: number }>(
      `select r.id, r.attempt from backstop.runs r join backstop.targets t on t.id = r.target_id
       where r.status in ('running', 'cancelling') and ${where}`,
      values,
    );
    return rows.map((row) => ({ runId: row.id, attempt: row.attempt }));
  };
  const orNothing = async (read: () => Promise<HeldAttempt[]>) => read().catch(() => [] as HeldAttempt[]);

  const chooseProcess = async (fault: PlannedFault): Promise<ManagedProcess | null> => {
    const deadline = Date.now() + WAIT_FOR_VICTIM_MS;
    for (;;) {
      const last = Date.now() > deadline;
      if (fault.process === 'runner') {
        const candidates = supervisor.runners().filter((runner) => supervisor.healthy(runner));
        // Prefer a runner that holds its run (past start-up and claim) over one still starting.
        for (const runner of candidates) if ((await orNothing(() => heldBy(runner.pid))).length > 0) return runner;
        if (last) return candidates[0] ?? null;
      } else {
        const victim = supervisor.get(fault.process!);
        // Keep two healthy long-lived processes besides the victim: reapers must stay alive
        // (DESIGN.md's bound assumes one is running), and on a loaded machine one may be slow.
        const others = supervisor.longLived().filter((other) => other !== victim && supervisor.healthy(other));
        if (victim && supervisor.healthy(victim) && others.length >= 2) return victim;
        if (last) return null;
      }
      await sleep(200);
    }
  };

  const processFault = async (fault: PlannedFault, record: FaultRecord) => {
    const victim = await chooseProcess(fault);
    if (!victim) {
      record.skipped = `no healthy ${fault.process} within ${WAIT_FOR_VICTIM_MS / 1000} s`;
      return;
    }
    record.hit = `${victim.name} (pid ${victim.pid})`;
    record.held = await orNothing(() => heldBy(victim.pid));
    const at = strikeNow(record);
    if (fault.kind === 'kill-9') {
      victim.endRequested = true;
      victim.child.kill('SIGKILL');
      record.healedAt = at;
    } else if (fault.kind === 'sigterm') {
      victim.endRequested = true;
      victim.child.kill('SIGTERM');
      record.healedAt = at;
    } else {
      victim.child.kill('SIGSTOP');
      victim.stopped = true;
      await sleep(fault.durationMs!);
      if (victim.exit === null) victim.child.kill('SIGCONT');
      victim.stopped = false;
      record.healedAt = Date.now();
    }
    record.detail = `${record.held.length} attempt(s) held`;
  };

  const catalogRestart = async (fault: PlannedFault, record: FaultRecord) => {
    record.held = await orNothing(() => running());
    record.hit = `catalog (pg_ctl stop -m ${fault.mode})`;
    const at = strikeNow(record);
    catalogDownSince = at;
    try {
      await env.stopCatalog(fault.mode as 'fast' | 'immediate');
      await sleep(fault.durationMs!);
    } finally {
      await startCatalog(env);
      record.healedAt = Date.now();
      outages.push({ from: at, to: record.healedAt });
      catalogDownSince = null;
    }
    record.detail = `down ${((record.healedAt - at) / 1000).toFixed(1)} s with ${record.held.length} attempt(s) running`;
  };

  const s3Outage = async (fault: PlannedFault, record: FaultRecord) => {
    record.held = await orNothing(() => running(`t.store_url like 's3:%'`));
    record.hit = 's3rver (SIGKILL)';
    const at = strikeNow(record);
    await env.s3.halt();
    await sleep(fault.durationMs!);
    await restartS3(env);
    record.healedAt = Date.now();
    record.detail = `down ${((record.healedAt - at) / 1000).toFixed(1)} s with ${record.held.length} S3 attempt(s) running`;
  };

  const storeWriteFailure = async (fault: PlannedFault, record: FaultRecord) => {
    record.held = await orNothing(() => running(`t.store_url like $1`, [`%${env.proxy.endpoint}%`]));
    record.hit = 'S3 behind the write-failing proxy';
    const refusedBefore = env.proxy.refused();
    const at = strikeNow(record);
    env.proxy.failWrites(true);
    await sleep(fault.durationMs!);
    env.proxy.failWrites(false);
    record.healedAt = Date.now();
    record.detail = `${env.proxy.refused() - refusedBefore} write request(s) reset over ${((record.healedAt - at) / 1000).toFixed(1)} s`;
  };

  /** Backstop's sessions on the sources server: pg_dump's name carries the run id. */
  const dumpSessions = async () =>
    query<{ datname: string; application_name: string }>(
      env.sourcesUrl,
      `select datname, application_name from pg_stat_activity where application_name like 'backstop:%' order by application_name`,
    );

  const targetGone = async (fault: PlannedFault, record: FaultRecord) => {
    const deadline = Date.now() + WAIT_FOR_VICTIM_MS;
    let sessions = await dumpSessions();
    while (sessions.length === 0 && Date.now() < deadline) {
      await sleep(100);
      sessions = await dumpSessions();
    }
    const sources = [...env.sources.values()];
    const source = sources.find((candidate) => candidate.database === sessions[0]?.datname) ?? (fault.mode === 'drop' ? sources[fault.id % sources.length] : undefined);
    if (!source) {
      record.skipped = `no dump in flight within ${WAIT_FOR_VICTIM_MS / 1000} s`;
      return;
    }
    const runIds = sessions.filter((session) => session.datname === source.database).map((session) => session.application_name.slice('backstop:'.length));
    const { rows } = await env.pool.query<{ id: string; attempt: number }>(`select id, attempt from backstop.runs where id = any($1::uuid[])`, [runIds]).catch(() => ({ rows: [] }));
    record.held = rows.map((row) => ({ runId: row.id, attempt: row.attempt }));
    record.hit = source.database;
    const at = strikeNow(record);
    if (fault.mode === 'terminate') {
      const terminated = await query<{ count: string }>(
        env.sourcesUrl,
        `select count(*) filter (where pg_terminate_backend(pid)) as count from pg_stat_activity where datname = $1 and application_name like 'backstop%'`,
        [source.database],
      );
      record.healedAt = Date.now();
      record.detail = `${terminated[0]!.count} session(s) of ${record.held.length} dump(s) terminated`;
    } else {
      await query(env.sourcesUrl, `drop database ${source.database} with (force)`);
      await sleep(fault.durationMs!);
      await recreateSource(env.sourcesUrl, source);
      record.healedAt = Date.now();
      record.detail = `dropped during ${record.held.length} dump(s), recreated ${((record.healedAt - at) / 1000).toFixed(1)} s later`;
    }
  };

  const strike = async (fault: PlannedFault): Promise<FaultRecord> => {
    await sleep(Math.max(0, deps.startedAt + fault.at - Date.now()), undefined, { signal: deps.signal });
    const record: FaultRecord = { planned: fault, at: null, healedAt: null, hit: '', held: [], detail: '', skipped: null };
    try {
      switch (fault.kind) {
        case 'kill-9':
        case 'sigstop':
        case 'sigterm':
          await processFault(fault, record);
          break;
        case 'catalog-restart':
          await exclusively('catalog', () => catalogRestart(fault, record));
          break;
        case 's3-outage':
          await exclusively('s3', () => s3Outage(fault, record));
          break;
        case 'store-write-failure':
          await exclusively('proxy', () => storeWriteFailure(fault, record));
          break;
        case 'target-gone':
          await exclusively('sources', () => targetGone(fault, record));
          break;
      }
    } catch (error) {
      // A fault that could not be healed leaves the environment broken: that ends the run.
      record.detail = `failed: ${(error as Error).message}`;
      log(`fault ${describePlannedFault(fault)} failed: ${(error as Error).stack ?? error}`);
      throw error;
    }
    if (record.skipped) log(`fault ${describePlannedFault(fault)}: skipped (${record.skipped})`);
    else log(`fault #${fault.id} over: ${record.detail}`);
    return record;
  };

  const done = Promise.all(faults.map(strike)).finally(async () => {
    finished = true;
    await holdingsLoop;
  });
  return {
    done,
    catalogOutages: () => [...outages, ...(catalogDownSince !== null ? [{ from: catalogDownSince, to: Date.now() }] : [])],
    catalogRecentlyDown(at, withinMs) {
      if (catalogDownSince !== null) return true;
      return outages.some((outage) => outage.to >= at - withinMs);
    },
  };
}
