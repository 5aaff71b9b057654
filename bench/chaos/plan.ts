import { derivePrng } from './prng.ts';

/**
 * The chaos schedule, pure: which runs are queued when and where, and which faults strike
 * when and whom. Derived from the seed and the options only, so the same seed gives the
 * same schedule (what each fault then hits depends on the moment: that is logged).
 */

export const faultKinds = ['kill-9', 'sigstop', 'sigterm', 'catalog-restart', 's3-outage', 'store-write-failure', 'target-gone'] as const;
export type FaultKind = (typeof faultKinds)[number];

/** Faults aimed at a Backstop process. */
export const processFaultKinds: readonly FaultKind[] = ['kill-9', 'sigstop', 'sigterm'];

export interface PlannedFault {
  /** 1-based, in time order. */
  id: number;
  /** Milliseconds after the start of the chaos window. */
  at: number;
  kind: FaultKind;
  /** Process faults: `worker-N`, `server`, or `runner` (a live `backstop run`, chosen when it strikes). */
  process?: string;
  /** SIGSTOP: until SIGCONT; outages and a dropped database: how long it lasts. */
  durationMs?: number;
  /** catalog-restart: pg_ctl stop mode; target-gone: terminate the dump's sessions, or drop the database. */
  mode?: 'fast' | 'immediate' | 'terminate' | 'drop';
}

export interface PlannedRun {
  index: number;
  /** Milliseconds after the start of the chaos window. */
  at: number;
  target: string;
  /** Queued through the server's API (falling back to SQL when it does not answer), or by SQL. */
  via: 'api' | 'sql';
}

export interface ChaosPlanOptions {
  seed: number;
  runs: number;
  /** Names of the targets runs are spread over. */
  targets: readonly string[];
  /** Number of `backstop worker` processes (`worker-1` … `worker-N`). */
  workers: number;
  leaseTtlMs: number;
  reaperIntervalMs: number;
  /** Runs queued per second. */
  arrivalRate: number;
  /** Faults per queued run (the total is at least the minimum of every kind). */
  faultsPerRun: number;
  /** Shortest average time between two faults. */
  minFaultSpacingMs: number;
}

export interface ChaosPlan {
  seed: number;
  windowMs: number;
  runs: PlannedRun[];
  faults: PlannedFault[];
}

/** Each process fault hits each kind of process at least once; the others strike twice at least. */
const MINIMUM_ROLES = ['worker', 'runner', 'server'] as const;
const MINIMUM_OTHER = 2;

export function minimumFaults(): number {
  return processFaultKinds.length * MINIMUM_ROLES.length + (faultKinds.length - processFaultKinds.length) * MINIMUM_OTHER;
}

export function planChaos(options: ChaosPlanOptions): ChaosPlan {
  if (!Number.isInteger(options.runs) || options.runs < 1) throw new Error(`runs must be a whole number above 0, got ${options.runs}`);
  if (options.targets.length === 0) throw new Error('at least one target is needed');
  const faultCount = Math.max(minimumFaults(), Math.round(options.runs * options.faultsPerRun));
  const windowMs = Math.round(Math.max((options.runs / options.arrivalRate) * 1000, faultCount * options.minFaultSpacingMs));

  const runRandom = derivePrng(options.seed, 'runs');
  // Runs arrive over the first 90 % of the window: the last faults strike while the queue drains.
  const runs: PlannedRun[] = Array.from({ length: options.runs }, (_, index) => ({
    index,
    at: Math.round((index / options.runs) * windowMs * 0.9),
    target: runRandom.pick(options.targets),
    via: runRandom.next() < 0.25 ? 'api' : 'sql',
  }));

  const faultRandom = derivePrng(options.seed, 'faults');
  const kinds: { kind: FaultKind; role?: string }[] = [];
  for (const kind of faultKinds) {
    if (processFaultKinds.includes(kind)) for (const role of MINIMUM_ROLES) kinds.push({ kind, role });
    else for (let copy = 0; copy < MINIMUM_OTHER; copy++) kinds.push({ kind });
  }
  while (kinds.length < faultCount) {
    const kind = faultRandom.weighted<FaultKind>({
      'kill-9': 3,
      sigstop: 2,
      sigterm: 2,
      'catalog-restart': 1,
      's3-outage': 1,
      'store-write-failure': 1,
      'target-gone': 2,
    });
    kinds.push(processFaultKinds.includes(kind) ? { kind, role: faultRandom.weighted({ worker: 5, runner: 3, server: 2 }) } : { kind });
  }
  const slot = windowMs / faultCount;
  const faults = faultRandom.shuffle(kinds).map(({ kind, role }, index): PlannedFault => {
    // One fault per slot, at a random moment inside its middle 80 %.
    const fault: PlannedFault = { id: index + 1, at: Math.round(slot * (index + 0.1 + 0.8 * faultRandom.next())), kind };
    if (role === 'worker') fault.process = `worker-${faultRandom.int(1, options.workers)}`;
    else if (role !== undefined) fault.process = role;
    const leaseGoneMs = options.leaseTtlMs + options.reaperIntervalMs;
    switch (kind) {
      case 'sigstop':
        // SIGCONT only once the lease is surely gone: the resumed process must find it lost.
        fault.durationMs = Math.round(leaseGoneMs + 1000 + faultRandom.between(0, 2000));
        break;
      case 'catalog-restart':
        // Some outages end within the lease (finalize retries get through), some outlast it.
        fault.mode = faultRandom.next() < 0.6 ? 'fast' : 'immediate';
        fault.durationMs = Math.round(faultRandom.between(300, options.leaseTtlMs + 2000));
        break;
      case 's3-outage':
        fault.durationMs = Math.round(faultRandom.between(1000, 5000));
        break;
      case 'store-write-failure':
        fault.durationMs = Math.round(faultRandom.between(2000, 6000));
        break;
      case 'target-gone':
        fault.mode = faultRandom.next() < 0.6 ? 'terminate' : 'drop';
        if (fault.mode === 'drop') fault.durationMs = Math.round(faultRandom.between(1000, 4000));
        break;
      default:
        break;
    }
    return fault;
  });
  return { seed: options.seed, windowMs, runs, faults };
}

/** What a fault does, e.g. `sigstop worker-2 for 6.4 s`. */
export function describeFaultAction(fault: PlannedFault): string {
  const parts: string[] = [fault.kind];
  if (fault.process) parts.push(fault.process);
  if (fault.mode) parts.push(fault.mode);
  if (fault.durationMs !== undefined) parts.push(`for ${(fault.durationMs / 1000).toFixed(1)} s`);
  return parts.join(' ');
}

/** One line per fault, for the log and `--plan-only`. */
export function describePlannedFault(fault: PlannedFault): string {
  return `#${fault.id} +${(fault.at / 1000).toFixed(1)} s ${describeFaultAction(fault)}`;
}
