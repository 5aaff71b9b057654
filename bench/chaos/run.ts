import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { checkOneActivePerTarget, checkRunEvents, checkTermination, readCatalog, timeFaults, type CatalogRun, type FaultTiming, type Violation } from './catalogChecks.ts';
import { chaosTargets, startEnvironment, type ChaosEnvironment, type StoreKind } from './environment.ts';
import { injectFaults, type FaultRecord } from './faults.ts';
import { startOverdueMonitor, type OverdueMonitor } from './monitor.ts';
import { localReader, s3Reader } from './objectStores.ts';
import { describePlannedFault, planChaos, type ChaosPlan } from './plan.ts';
import { startSupervisor, type ExitRecord, type Supervisor } from './processes.ts';
import { derivePrng } from './prng.ts';
import { restoreSample, type RestoreOutcome } from './restoreSample.ts';
import { checkArtifacts, checkOrphans, type StoreStats, type StoreView } from './storeChecks.ts';
import { feedRuns, startRunnerLauncher, type QueuedRun, type RunnerLauncher } from './workload.ts';

/**
 * One chaos run: real catalog, stores, workers, server and runners; runs queued and faults
 * struck on a schedule derived from the seed; then, once everything has settled and garbage
 * collection ran, every invariant checked against the catalog and the stores.
 */

export interface ChaosOptions {
  runs: number;
  seed: number;
  /** `backstop worker` processes (a `backstop server` with its in-process worker runs too). */
  workers?: number;
  /** Runs each worker (and the server) executes at once. */
  concurrency?: number;
  leaseTtlMs?: number;
  heartbeatIntervalMs?: number;
  reaperIntervalMs?: number;
  /** Hard deadline of each run from its creation. */
  runDeadlineMs?: number;
  /** Runs queued per second. */
  arrivalRate?: number;
  faultsPerRun?: number;
  minFaultSpacingMs?: number;
  /** Orders in the smallest source database (the others have two and three times as many). */
  rowsPerSource?: number;
  /** Succeeded runs restored with standard tools and compared with their source. */
  restoreSample?: number;
  /** How long, after the last fault, runs may take to end before the unfinished ones count as violations. */
  settleTimeoutMs?: number;
  /** Keep the temporary folder (logs, stores, catalog): always, or only when something was violated. */
  keepFiles?: 'always' | 'on-violation' | 'never';
  log?: (message: string) => void;
}

export type ResolvedChaosOptions = Required<Omit<ChaosOptions, 'log'>>;

export interface ChaosResult {
  options: ResolvedChaosOptions;
  plan: ChaosPlan;
  startedAt: number;
  durationMs: number;
  faults: FaultRecord[];
  catalogOutages: { from: number; to: number }[];
  queued: QueuedRun[];
  runnersLaunched: number;
  statuses: Record<string, number>;
  errorCodes: Record<string, number>;
  /** One message per `status: error code`, to say what happened. */
  errorExamples: Record<string, string>;
  /** Runs with more than one attempt. */
  retried: number;
  timings: FaultTiming[];
  /** Runs whose source database went away (sessions terminated, or dropped) during their dump, and how they ended. */
  caughtByTargetGone: { runId: string; attempt: number; status: string; error: string | null }[];
  violations: Violation[];
  restores: RestoreOutcome[];
  artifactsChecked: number;
  events: number;
  store: StoreStats & { pendingMultipartUploads: number };
  garbageCollection: { exitCode: number | null; prefixesDeleted: number; errors: string[] };
  exits: ExitRecord[];
  monitorPasses: number;
  /** The kept temporary folder, or null when it was removed. */
  keptAt: string | null;
}

export function resolveChaosOptions(options: ChaosOptions): ResolvedChaosOptions {
  const runs = options.runs;
  return {
    runs,
    seed: options.seed,
    workers: options.workers ?? 3,
    concurrency: options.concurrency ?? 2,
    leaseTtlMs: options.leaseTtlMs ?? 6000,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 2000,
    reaperIntervalMs: options.reaperIntervalMs ?? 1000,
    runDeadlineMs: options.runDeadlineMs ?? 3_600_000,
    arrivalRate: options.arrivalRate ?? 1,
    faultsPerRun: options.faultsPerRun ?? 0.1,
    minFaultSpacingMs: options.minFaultSpacingMs ?? 3000,
    rowsPerSource: options.rowsPerSource ?? 4000,
    restoreSample: options.restoreSample ?? Math.max(4, Math.min(25, Math.round(runs / 40))),
    settleTimeoutMs: options.settleTimeoutMs ?? 600_000,
    keepFiles: options.keepFiles ?? 'on-violation',
  };
}

export function planFor(options: ResolvedChaosOptions): ChaosPlan {
  return planChaos({
    seed: options.seed,
    runs: options.runs,
    targets: chaosTargets.map((target) => target.name),
    workers: options.workers,
    leaseTtlMs: options.leaseTtlMs,
    reaperIntervalMs: options.reaperIntervalMs,
    arrivalRate: options.arrivalRate,
    faultsPerRun: options.faultsPerRun,
    minFaultSpacingMs: options.minFaultSpacingMs,
  });
}

export async function run(input: ChaosOptions): Promise<ChaosResult> {
  const options = resolveChaosOptions(input);
  const began = performance.now();
  const log = input.log ?? ((message: string) => process.stderr.write(`[chaos ${((performance.now() - began) / 1000).toFixed(1).padStart(6)} s] ${message}\n`));
  const plan = planFor(options);
  log(`seed ${options.seed}: ${options.runs} runs and ${plan.faults.length} faults over ${(plan.windowMs / 1000).toFixed(0)} s`);
  for (const fault of plan.faults) log(`  planned ${describePlannedFault(fault)}`);

  const env = await startEnvironment({ ...options, log });
  let supervisor: Supervisor | undefined;
  let monitor: OverdueMonitor | undefined;
  let launcher: RunnerLauncher | undefined;
  // Stops the run's timers (queueing, faults still to come) when something fails half-way.
  const abort = new AbortController();
  let violations: Violation[] = [];
  try {
    supervisor = startSupervisor({ env: env.childEnv, logDir: env.logDir, workers: options.workers, concurrency: options.concurrency, log });
    await supervisor.allReady(120_000);
    const startedAt = Date.now();
    log(`workers and server ready; chaos window starts (logs in ${env.logDir})`);
    const injector = injectFaults(plan.faults, { env, supervisor, startedAt, log, signal: abort.signal });
    monitor = startOverdueMonitor(env.pool, { reaperIntervalMs: options.reaperIntervalMs, outages: injector.catalogOutages });
    launcher = startRunnerLauncher({ env, supervisor });
    const [queued, faults] = await Promise.all([feedRuns(plan.runs, { env, supervisor, startedAt, runDeadlineMs: options.runDeadlineMs, log, signal: abort.signal }), injector.done]);
    log('every fault struck and healed; waiting for the runs to end');
    await settle(env, options.settleTimeoutMs, log);
    violations = await monitor.stop();
    await launcher.stop();
    await supervisor.close(30_000);
    const garbageCollection = await collectGarbage(env);
    log(`garbage collection: ${garbageCollection.prefixesDeleted} prefix(es) deleted${garbageCollection.errors.length > 0 ? `, errors: ${garbageCollection.errors.join('; ')}` : ''}`);

    log('checking the invariants');
    const outages = injector.catalogOutages();
    const snapshot = await readCatalog(env.pool);
    const attempts = checkRunEvents(snapshot, violations);
    checkOneActivePerTarget(attempts, violations);
    checkTermination(snapshot, { reaperIntervalMs: options.reaperIntervalMs, outages }, violations);
    const timings = timeFaults(faults, attempts, { ...options, outages }, violations);

    const bucketReader = s3Reader({ endpoint: env.s3.endpoint, bucket: env.s3.bucket, env: env.s3.env });
    const diskReader = localReader(env.localStoreDir);
    const views: StoreView[] = [
      { kind: 'local', reader: diskReader, keyPrefix: '' },
      { kind: 's3', reader: bucketReader, keyPrefix: `${env.s3Prefixes.s3}/` },
      { kind: 'flaky-s3', reader: bucketReader, keyPrefix: `${env.s3Prefixes['flaky-s3']}/` },
    ];
    const storesByKind = new Map<StoreKind, StoreView>(views.map((view) => [view.kind, view]));
    const targets = new Map(env.targets.map((target) => [target.name, target]));
    const artifactsChecked = await checkArtifacts(snapshot.runs, targets, storesByKind, violations);
    const storeStats = await checkOrphans(
      snapshot.runs,
      targets,
      [
        { reader: diskReader, views: [views[0]!] },
        { reader: bucketReader, views: [views[1]!, views[2]!] },
      ],
      violations,
    );
    const sample = chooseRestoreSample(snapshot.runs, faults, options);
    log(`restoring ${sample.length} succeeded backup(s) with age/zstd/pg_restore and comparing them with their sources`);
    const restores = await restoreSample(sample, { env, stores: storesByKind }, violations);
    bucketReader.close();

    const count = (values: (string | null)[]) => {
      const counts: Record<string, number> = {};
      for (const value of values) counts[value ?? 'none'] = (counts[value ?? 'none'] ?? 0) + 1;
      return counts;
    };
    const keep = options.keepFiles === 'always' || (options.keepFiles === 'on-violation' && violations.length > 0);
    const result: ChaosResult = {
      options,
      plan,
      startedAt,
      durationMs: performance.now() - began,
      faults,
      catalogOutages: outages,
      queued,
      runnersLaunched: launcher.launched(),
      statuses: count(snapshot.runs.map((one) => one.status)),
      errorCodes: count(snapshot.runs.filter((one) => one.status !== 'succeeded').map((one) => `${one.status}: ${one.errorCode}`)),
      errorExamples: Object.fromEntries(
        snapshot.runs
          .filter((one) => one.status !== 'succeeded')
          .map((one) => [`${one.status}: ${one.errorCode}`, one.errorMessage ?? ''])
          .reverse(),
      ),
      retried: snapshot.runs.filter((one) => one.attempt > 1).length,
      timings,
      caughtByTargetGone: faults
        .filter((fault) => fault.planned.kind === 'target-gone')
        .flatMap((fault) => fault.held)
        .map((held) => {
          const caught = snapshot.runs.find((one) => one.id === held.runId);
          return { ...held, status: caught?.status ?? 'unknown', error: caught?.errorCode ? `[${caught.errorCode}] ${caught.errorMessage}` : null };
        }),
      violations,
      restores,
      artifactsChecked,
      events: [...snapshot.events.values()].reduce((sum, list) => sum + list.length, 0),
      store: { ...storeStats, pendingMultipartUploads: (await env.s3.pendingMultipartUploads()).length },
      garbageCollection,
      exits: supervisor.exits(),
      monitorPasses: monitor.passes(),
      keptAt: keep ? env.root : null,
    };
    await env.close({ keepFiles: keep });
    if (keep) log(`kept ${env.root} (catalog, stores, process logs)`);
    return result;
  } catch (error) {
    abort.abort(error);
    await monitor?.stop().catch(() => {});
    await launcher?.stop().catch(() => {});
    await supervisor?.close(10_000).catch(() => {});
    log(`chaos run failed: ${(error as Error).stack ?? error}; kept ${env.root}`);
    await env.close({ keepFiles: true });
    throw error;
  }
}

/** Waits until no run is active, or the timeout passes (the termination check reports what is left). */
async function settle(env: ChaosEnvironment, timeoutMs: number, log: (message: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastReport = 0;
  for (;;) {
    const active = await env.pool
      .query<{ count: number }>(`select count(*)::int as count from backstop.runs where status in ('queued', 'dispatched', 'running', 'cancelling')`)
      .then((answer) => answer.rows[0]!.count)
      .catch(() => -1);
    if (active === 0) return;
    if (Date.now() > deadline) {
      log(`${active} run(s) still active ${timeoutMs / 1000} s after the last fault`);
      return;
    }
    if (Date.now() - lastReport > 10_000) {
      log(`${active} run(s) still active`);
      lastReport = Date.now();
    }
    await sleep(500);
  }
}

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'backstop.js');

/** Backstop's own garbage collection, as an operator would run it: `backstop prune --grace-period 0`. */
async function collectGarbage(env: ChaosEnvironment): Promise<ChaosResult['garbageCollection']> {
  const child = spawn(process.execPath, [bin, 'prune', '--grace-period', '0', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env.childEnv, BACKSTOP_LOG_LEVEL: 'warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    const report = JSON.parse(stdout) as { targets: { garbage: unknown[]; error: { code: string; message: string } | null; target: string }[] };
    return {
      exitCode,
      prefixesDeleted: report.targets.reduce((sum, target) => sum + target.garbage.length, 0),
      errors: report.targets.filter((target) => target.error).map((target) => `${target.target}: [${target.error!.code}] ${target.error!.message}`),
    };
  } catch {
    return { exitCode, prefixesDeleted: 0, errors: [`prune printed no report: ${stderr.slice(-2000)}`] };
  }
}

/**
 * Which succeeded backups to restore: every one whose dump the source vanished under (a
 * success there must be a real one), then a seeded random choice of the others.
 */
function chooseRestoreSample(runs: readonly CatalogRun[], faults: readonly FaultRecord[], options: ResolvedChaosOptions): CatalogRun[] {
  const succeeded = runs.filter((one) => one.status === 'succeeded' && one.artifact);
  const hit = new Set(faults.filter((fault) => fault.planned.kind === 'target-gone').flatMap((fault) => fault.held.map((held) => `${held.runId}/${held.attempt}`)));
  const chosen = succeeded.filter((one) => hit.has(`${one.id}/${one.attempt}`));
  const others = derivePrng(options.seed, 'restore-sample').shuffle(succeeded.filter((one) => !chosen.includes(one)));
  return [...chosen, ...others.slice(0, Math.max(0, options.restoreSample - chosen.length))];
}
