import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { JobStatus } from '../src/core/jobStatus.ts';
import { reportJobStatus } from '../src/operations/reportJobStatus.ts';
import { isBackstopError } from '../src/core/errors.ts';
import { applyRunEvent, exclusiveStatuses, isTerminal, runnerOutcomes, type RunStateEvent, type RunnerOutcome, type RunState, type RunStatus } from '../src/core/runState.ts';
import type { Artifact } from '../src/core/artifact.ts';
import { claimForDispatch } from '../src/db/executorRuns.ts';
import { claimNextRun, claimRunById, finalizeRun, reapRuns, releaseRun, renewLease } from '../src/db/runLeases.ts';
import { createRun, requestCancel } from '../src/db/runRecords.ts';
import { createTarget, type TargetRecord } from '../src/db/targets.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';

/**
 * The catalog's SQL transitions against src/core/runState.ts, model-based: fast-check generates
 * sequences of real catalog operations (create, worker claim, claim by id, heartbeat, cancel,
 * finalize, release, reap, GitHub dispatch, CI job report) on a few runs of two targets, one run
 * by workers and one by GitHub Actions. Each operation is also applied to the pure machine, and
 * after each the operation's result (accepted or refused) and every run's row (status, attempt,
 * lease, deadlines) must be what the machine says.
 *
 * Time: the model's clock stands still at 0 and every lease, start deadline and hard deadline is
 * minutes long, so nothing expires by itself while a sequence runs. Expiry is a command of its
 * own that moves the column into the past with SQL (and the model's copy to -1 s), so the
 * reaper and the lease checks meet expired values deterministically, without sleeping.
 */

const NOW = 0;
const LEASE_TTL_MS = 600_000;
const START_DEADLINE_MS = 900_000;
const RUN_DEADLINE_MS = 3_600_000;
const EXPIRED = -1_000;
/** A lease id no attempt of any run ever held. */
const FOREIGN_LEASE = '00000000-0000-4000-8000-000000000000';

const artifact: Artifact = {
  storeUrl: 'file:///nowhere',
  prefix: 'db/2025/01/run/attempt-1/',
  manifest: { name: 'manifest.json', size: 10, sha256: 'a'.repeat(64) },
  files: [{ name: 'dump.pgcustom.zst', size: 100, sha256: 'b'.repeat(64) }],
};

type TargetKey = 'worker' | 'github';

interface ModelRun {
  id: string;
  target: TargetKey;
  state: RunState;
  /** Every lease id any attempt of this run was given, oldest first. */
  leases: string[];
  lastFinalize: { leaseId: string; outcome: RunnerOutcome } | null;
}

interface TargetShape {
  exclusive: boolean;
  maxAttempts: number;
}

interface Model {
  targets: Record<TargetKey, TargetShape>;
  runs: ModelRun[];
}

interface Real {
  catalog: TestCatalog;
  targets: Record<TargetKey, TargetRecord>;
}

/** How often each command was accepted and refused, to prove the generator reaches both sides. */
type Tally = Record<string, { accepted: number; refused: number }>;
const tally: Tally = {};
function count(name: string, accepted: boolean): void {
  const entry = tally[name] ?? { accepted: 0, refused: 0 };
  tally[name] = entry;
  if (accepted) entry.accepted++;
  else entry.refused++;
}

const clock = { now: NOW };

function apply(run: ModelRun, event: RunStateEvent): boolean {
  const result = applyRunEvent(run.state, event, clock);
  if (result.ok) run.state = result.state;
  return result.ok;
}

/** Another run of the same exclusive target is executing: the partial unique index refuses this one. */
function blockedByExclusive(model: Model, run: ModelRun, alsoExecuting: ModelRun[] = []): boolean {
  if (!model.targets[run.target].exclusive) return false;
  return model.runs.some(
    (other) => other !== run && other.target === run.target && ((exclusiveStatuses as readonly RunStatus[]).includes(other.state.status) || alsoExecuting.includes(other)),
  );
}

/** What a claim would do to the run, without changing it. */
function claimable(run: ModelRun): boolean {
  return applyRunEvent(run.state, { type: 'claim', leaseId: 'probe', leaseExpiresAt: LEASE_TTL_MS }, clock).ok;
}

const active = (run: ModelRun) => !isTerminal(run.state.status);
const leased = (run: ModelRun) => run.state.status === 'running' || run.state.status === 'cancelling';

/**
 * The run a command acts on. Most indices choose among the runs the command is meant for
 * (active or leased ones), so sequences reach deep states; the rest choose among all, so the
 * refusals of finished and queued runs are tried too.
 */
function pick(model: Model, index: number, prefer: (run: ModelRun) => boolean = () => true): ModelRun {
  const preferred = model.runs.filter(prefer);
  const from = index < 6 && preferred.length > 0 ? preferred : model.runs;
  return from[index % from.length]!;
}

/** A lease id for a runner-side command: the run's own, an older attempt's, or one nobody held. */
type LeaseChoice = 'current' | 'stale' | 'foreign';
function leaseFor(run: ModelRun, choice: LeaseChoice): string {
  if (choice === 'current' && run.state.leaseId) return run.state.leaseId;
  const stale = run.leases.filter((lease) => lease !== run.state.leaseId);
  if (choice !== 'foreign' && stale.length > 0) return stale[stale.length - 1]!;
  return FOREIGN_LEASE;
}

async function refusal(promise: Promise<unknown>, codes: string[]): Promise<boolean> {
  try {
    await promise;
    return true;
  } catch (error) {
    assert.ok(isBackstopError(error), `expected a BackstopError (${codes.join(' or ')}), got ${String(error)}`);
    assert.ok(codes.includes(error.code), `refused with ${error.code} (${error.message}); expected ${codes.join(' or ')}`);
    return false;
  }
}

interface RowFacts {
  id: string;
  status: RunStatus;
  attempt: number;
  lease_id: string | null;
  has_lease_expiry: boolean;
  lease_live: boolean;
  has_start_deadline: boolean;
  start_deadline_live: boolean;
  deadline_live: boolean;
  cancel_requested: boolean;
}

/** Every run's row against the model, after every command. */
async function compareRows(model: Model, real: Real, after: string): Promise<void> {
  const { rows } = await real.catalog.pool.query<RowFacts>(
    `select id, status, attempt, lease_id::text, lease_expires_at is not null as has_lease_expiry,
       coalesce(lease_expires_at > now(), false) as lease_live,
       start_deadline_at is not null as has_start_deadline, coalesce(start_deadline_at > now(), false) as start_deadline_live,
       deadline_at > now() as deadline_live, cancel_requested_at is not null as cancel_requested
     from backstop.runs order by created_at, id`,
  );
  assert.equal(rows.length, model.runs.length, `${after}: ${rows.length} rows, the model has ${model.runs.length} runs`);
  for (const run of model.runs) {
    const row = rows.find((candidate) => candidate.id === run.id);
    assert.ok(row, `${after}: run ${run.id} is missing`);
    const { state } = run;
    const expected = {
      status: state.status,
      attempt: state.attempt,
      leaseId: state.leaseId,
      hasLeaseExpiry: state.leaseExpiresAt !== null,
      leaseLive: state.leaseExpiresAt !== null && NOW < state.leaseExpiresAt,
      hasStartDeadline: state.startDeadlineAt !== null,
      startDeadlineLive: state.startDeadlineAt !== null && NOW < state.startDeadlineAt,
      deadlineLive: NOW < state.deadlineAt,
      cancelRequested: state.cancelRequested,
    };
    const actual = {
      status: row.status,
      attempt: row.attempt,
      leaseId: row.lease_id,
      hasLeaseExpiry: row.has_lease_expiry,
      leaseLive: row.lease_live,
      hasStartDeadline: row.has_start_deadline,
      startDeadlineLive: row.start_deadline_live,
      deadlineLive: row.deadline_live,
      cancelRequested: row.cancel_requested,
    };
    assert.deepEqual(actual, expected, `${after}: run ${model.runs.indexOf(run)} (${run.target}) differs from the model`);
  }
}

type Command = fc.AsyncCommand<Model, Real>;

class CreateRun implements Command {
  readonly target: TargetKey;
  constructor(target: TargetKey) {
    this.target = target;
  }
  // A few active runs at a time (finished ones stay, and keep being tried).
  check = (model: Readonly<Model>) => model.runs.filter(active).length < 3 && model.runs.length < 12;
  async run(model: Model, real: Real) {
    const record = await createRun(real.catalog.pool, { targetId: real.targets[this.target].id, trigger: 'model', runDeadlineMs: RUN_DEADLINE_MS });
    model.runs.push({
      id: record.id,
      target: this.target,
      leases: [],
      lastFinalize: null,
      state: {
        status: 'queued',
        attempt: 0,
        maxAttempts: model.targets[this.target].maxAttempts,
        leaseId: null,
        leaseExpiresAt: null,
        startDeadlineAt: null,
        deadlineAt: RUN_DEADLINE_MS,
        cancelRequested: false,
      },
    });
    count('create', true);
    await compareRows(model, real, this.toString());
  }
  toString = () => `create(${this.target})`;
}

/** A worker asks for the next run: the oldest queued, claimable run of a worker-executed target. */
class WorkerClaim implements Command {
  check = () => true;
  async run(model: Model, real: Real) {
    const expected = model.runs.find((run) => run.target === 'worker' && run.state.status === 'queued' && claimable(run) && !blockedByExclusive(model, run));
    const claimed = await claimNextRun(real.catalog.pool, { leaseTtlMs: LEASE_TTL_MS, claimedBy: 'model-worker' });
    assert.equal(claimed?.id ?? null, expected?.id ?? null, 'the worker claimed another run than the model picks');
    if (expected && claimed) {
      assert.ok(apply(expected, { type: 'claim', leaseId: claimed.leaseId, leaseExpiresAt: LEASE_TTL_MS }));
      expected.leases.push(claimed.leaseId);
    }
    count('workerClaim', claimed !== null);
    await compareRows(model, real, this.toString());
  }
  toString = () => 'workerClaim';
}

/** `backstop run RUN_ID`, what a GitHub job or an operator does. */
class ClaimById implements Command {
  readonly index: number;
  constructor(index: number) {
    this.index = index;
  }
  check = (model: Readonly<Model>) => model.runs.length > 0;
  async run(model: Model, real: Real) {
    const run = pick(model, this.index, active);
    const expected = claimable(run) && !blockedByExclusive(model, run);
    let leaseId: string | null = null;
    const accepted = await refusal(
      claimRunById(real.catalog.pool, run.id, { leaseTtlMs: LEASE_TTL_MS, claimedBy: 'model-runner' }).then((claimed) => {
        leaseId = claimed.leaseId;
      }),
      isTerminal(run.state.status) ? ['RUN_ALREADY_TERMINAL'] : ['RUN_NOT_CLAIMABLE'],
    );
    assert.equal(accepted, expected, `claim by id from ${run.state.status}: catalog ${accepted ? 'accepted' : 'refused'}`);
    if (accepted) {
      assert.ok(apply(run, { type: 'claim', leaseId: leaseId!, leaseExpiresAt: LEASE_TTL_MS }));
      run.leases.push(leaseId!);
    }
    count('claimById', accepted);
    await compareRows(model, real, this.toString());
  }
  toString = () => `claimById(${this.index})`;
}

class Heartbeat implements Command {
  readonly index: number;
  readonly lease: LeaseChoice;
  constructor(index: number, lease: LeaseChoice) {
    this.index = index;
    this.lease = lease;
  }
  check = (model: Readonly<Model>) => model.runs.length > 0;
  async run(model: Model, real: Real) {
    const run = pick(model, this.index, leased);
    const leaseId = leaseFor(run, this.lease);
    const state = await renewLease(real.catalog.pool, { runId: run.id, leaseId, leaseTtlMs: LEASE_TTL_MS, progress: { phase: 'model' } });
    const expected = apply(run, { type: 'heartbeat', leaseId, leaseExpiresAt: LEASE_TTL_MS });
    assert.equal(state !== null, expected, `heartbeat (${this.lease} lease) on ${run.state.status}: catalog ${state ? 'renewed' : 'refused'}`);
    if (state) {
      assert.equal(state.status, run.state.status, 'the heartbeat reported another status');
      assert.equal(state.cancelRequested, run.state.cancelRequested, 'the heartbeat reported another cancel request');
    }
    count(`heartbeat:${this.lease}`, state !== null);
    await compareRows(model, real, this.toString());
  }
  toString = () => `heartbeat(${this.index}, ${this.lease})`;
}

class RequestCancel implements Command {
  readonly index: number;
  constructor(index: number) {
    this.index = index;
  }
  check = (model: Readonly<Model>) => model.runs.length > 0;
  async run(model: Model, real: Real) {
    const run = pick(model, this.index, active);
    const accepted = await refusal(requestCancel(real.catalog.pool, run.id, 'model cancel'), ['RUN_ALREADY_TERMINAL']);
    assert.equal(accepted, apply(run, { type: 'requestCancel' }), `cancel: catalog ${accepted ? 'accepted' : 'refused'}`);
    count('requestCancel', accepted);
    await compareRows(model, real, this.toString());
  }
  toString = () => `requestCancel(${this.index})`;
}

async function finalize(real: Real, run: ModelRun, leaseId: string, outcome: RunnerOutcome, name: string): Promise<void> {
  const from = run.state.status;
  const accepted = await refusal(
    finalizeRun(real.catalog.pool, {
      runId: run.id,
      leaseId,
      outcome,
      error: outcome === 'succeeded' ? null : { code: 'MODEL', message: `model ${outcome}` },
      artifact: outcome === 'succeeded' ? artifact : null,
    }),
    ['LEASE_LOST'],
  );
  assert.equal(accepted, apply(run, { type: 'finalize', leaseId, outcome }), `${name} ${outcome} from ${from}: catalog ${accepted ? 'accepted' : 'refused'}`);
  if (accepted) run.lastFinalize = { leaseId, outcome };
  count(name, accepted);
}

class Finalize implements Command {
  readonly index: number;
  readonly lease: LeaseChoice;
  readonly outcome: RunnerOutcome;
  constructor(index: number, lease: LeaseChoice, outcome: RunnerOutcome) {
    this.index = index;
    this.lease = lease;
    this.outcome = outcome;
  }
  check = (model: Readonly<Model>) => model.runs.length > 0;
  async run(model: Model, real: Real) {
    const run = pick(model, this.index, leased);
    await finalize(real, run, leaseFor(run, this.lease), this.outcome, `finalize:${this.lease}`);
    await compareRows(model, real, this.toString());
  }
  toString = () => `finalize(${this.index}, ${this.lease}, ${this.outcome})`;
}

/** A runner that did not hear the answer sends the same finalize again. */
class RepeatFinalize implements Command {
  readonly index: number;
  constructor(index: number) {
    this.index = index;
  }
  check = (model: Readonly<Model>) => model.runs.some((run) => run.lastFinalize !== null);
  async run(model: Model, real: Real) {
    const finalized = model.runs.filter((run) => run.lastFinalize !== null);
    const run = finalized[this.index % finalized.length]!;
    await finalize(real, run, run.lastFinalize!.leaseId, run.lastFinalize!.outcome, 'finalize:repeat');
    await compareRows(model, real, this.toString());
  }
  toString = () => `repeatFinalize(${this.index})`;
}

class Release implements Command {
  readonly index: number;
  readonly lease: LeaseChoice;
  constructor(index: number, lease: LeaseChoice) {
    this.index = index;
    this.lease = lease;
  }
  check = (model: Readonly<Model>) => model.runs.length > 0;
  async run(model: Model, real: Real) {
    const run = pick(model, this.index, leased);
    const leaseId = leaseFor(run, this.lease);
    const from = run.state.status;
    const released = await releaseRun(real.catalog.pool, { runId: run.id, leaseId, reason: 'model release' });
    assert.equal(released, apply(run, { type: 'release', leaseId }), `release (${this.lease} lease) from ${from}: catalog ${released ? 'released' : 'refused'}`);
    count(`release:${this.lease}`, released);
    await compareRows(model, real, this.toString());
  }
  toString = () => `release(${this.index}, ${this.lease})`;
}

class Reap implements Command {
  check = () => true;
  async run(model: Model, real: Real) {
    const reaped = await reapRuns(real.catalog.pool);
    for (const run of model.runs) {
      const from = run.state.status;
      const expected = apply(run, { type: 'reap' });
      const got = reaped.find((entry) => entry.id === run.id);
      assert.equal(got !== undefined, expected, `reap of a ${from} run: catalog ${got ? 'reaped' : 'left'} it`);
      if (got) {
        assert.equal(got.previousStatus, from);
        assert.equal(got.status, run.state.status, `reaped a ${from} run into ${got.status}`);
      }
      count(from === 'running' && run.state.status === 'queued' ? 'reap:requeue' : 'reap', expected);
    }
    assert.equal(reaped.length, reaped.filter((entry) => model.runs.some((run) => run.id === entry.id)).length, 'reaped an unknown run');
    await compareRows(model, real, this.toString());
  }
  toString = () => 'reap';
}

/** The GitHub executor's mark-dispatched: queued backups of the GitHub target become dispatched. */
class Dispatch implements Command {
  check = () => true;
  async run(model: Model, real: Real) {
    const expected: ModelRun[] = [];
    for (const run of model.runs) {
      if (run.target !== 'github' || run.state.status !== 'queued' || blockedByExclusive(model, run, expected)) continue;
      const startDeadlineAt = Math.min(run.state.deadlineAt, START_DEADLINE_MS);
      if (applyRunEvent(run.state, { type: 'dispatch', startDeadlineAt }, clock).ok) expected.push(run);
    }
    const dispatched = await claimForDispatch(real.catalog.pool, { startDeadlineMs: START_DEADLINE_MS, limit: 20, dispatcher: 'model' });
    assert.deepEqual(
      dispatched.map((entry) => model.runs.findIndex((run) => run.id === entry.run.id)).sort(),
      expected.map((run) => model.runs.indexOf(run)).sort(),
      'dispatched other runs than the model',
    );
    for (const run of expected) assert.ok(apply(run, { type: 'dispatch', startDeadlineAt: Math.min(run.state.deadlineAt, START_DEADLINE_MS) }));
    count('dispatch', dispatched.length > 0);
    await compareRows(model, real, this.toString());
  }
  toString = () => 'dispatch';
}

/** The CI job's `if: always()` step: `backstop report --job-status`. */
class JobReport implements Command {
  readonly index: number;
  readonly jobStatus: JobStatus;
  constructor(index: number, jobStatus: JobStatus) {
    this.index = index;
    this.jobStatus = jobStatus;
  }
  check = (model: Readonly<Model>) => model.runs.length > 0;
  async run(model: Model, real: Real) {
    const run = pick(model, this.index, active);
    const from = run.state.status;
    const { ended } = await reportJobStatus(real.catalog.pool, run.id, { jobStatus: this.jobStatus });
    const expected = apply(run, { type: 'executorEnd', outcome: this.jobStatus === 'cancelled' ? 'cancelled' : 'failed' });
    assert.equal(ended, expected, `job report ${this.jobStatus} on ${from}: catalog ${ended ? 'ended' : 'left'} the run`);
    count('jobReport', ended);
    await compareRows(model, real, this.toString());
  }
  toString = () => `jobReport(${this.index}, ${this.jobStatus})`;
}

/** Time passing, made deterministic: one of a run's deadlines is moved into the past. */
type Expiry = 'lease' | 'startDeadline' | 'deadline';
const expiryColumn: Record<Expiry, string> = { lease: 'lease_expires_at', startDeadline: 'start_deadline_at', deadline: 'deadline_at' };

class Expire implements Command {
  readonly index: number;
  readonly what: Expiry;
  constructor(index: number, what: Expiry) {
    this.index = index;
    this.what = what;
  }
  // Only runs whose column is still in the future: expiring anything else changes nothing.
  check = (model: Readonly<Model>) => this.candidates(model).length > 0;
  candidates(model: Readonly<Model>): ModelRun[] {
    const field = ({ lease: 'leaseExpiresAt', startDeadline: 'startDeadlineAt', deadline: 'deadlineAt' } as const)[this.what];
    return model.runs.filter((run) => run.state[field] !== null && NOW < run.state[field]!);
  }
  async run(model: Model, real: Real) {
    const candidates = this.candidates(model);
    const run = candidates[this.index % candidates.length]!;
    const column = expiryColumn[this.what];
    count(`expire:${this.what}`, true);
    await real.catalog.pool.query(`update backstop.runs set ${column} = now() - interval '1 second' where id = $1 and ${column} is not null`, [run.id]);
    if (this.what === 'lease' && run.state.leaseExpiresAt !== null) run.state = { ...run.state, leaseExpiresAt: EXPIRED };
    if (this.what === 'startDeadline' && run.state.startDeadlineAt !== null) run.state = { ...run.state, startDeadlineAt: EXPIRED };
    if (this.what === 'deadline') run.state = { ...run.state, deadlineAt: EXPIRED };
    await compareRows(model, real, this.toString());
  }
  toString = () => `expire(${this.index}, ${this.what})`;
}

const index = fc.nat({ max: 7 });
const leaseChoice = fc.constantFrom<LeaseChoice>('current', 'current', 'stale', 'foreign');
const commands = [
  { arbitrary: fc.constantFrom<TargetKey>('worker', 'github').map((target) => new CreateRun(target)), weight: 3 },
  { arbitrary: fc.constant(new WorkerClaim()), weight: 2 },
  { arbitrary: index.map((i) => new ClaimById(i)), weight: 3 },
  { arbitrary: fc.tuple(index, leaseChoice).map(([i, lease]) => new Heartbeat(i, lease)), weight: 2 },
  { arbitrary: index.map((i) => new RequestCancel(i)), weight: 1 },
  { arbitrary: fc.tuple(index, leaseChoice, fc.constantFrom(...runnerOutcomes)).map(([i, lease, outcome]) => new Finalize(i, lease, outcome)), weight: 2 },
  { arbitrary: index.map((i) => new RepeatFinalize(i)), weight: 1 },
  { arbitrary: fc.tuple(index, leaseChoice).map(([i, lease]) => new Release(i, lease)), weight: 1 },
  { arbitrary: fc.constant(new Reap()), weight: 3 },
  { arbitrary: fc.constant(new Dispatch()), weight: 2 },
  { arbitrary: fc.tuple(index, fc.constantFrom<JobStatus>('success', 'failure', 'cancelled')).map(([i, status]) => new JobReport(i, status)), weight: 1 },
  { arbitrary: fc.tuple(index, fc.constantFrom<Expiry>('lease', 'lease', 'startDeadline', 'deadline')).map(([i, what]) => new Expire(i, what)), weight: 4 },
].map(({ arbitrary, weight }) => fc.oneof({ arbitrary: arbitrary as fc.Arbitrary<Command>, weight }));

const targetShape = fc.record({ exclusive: fc.boolean(), maxAttempts: fc.integer({ min: 1, max: 3 }) });

let sequence = 0;

/** An emptied catalog with the two targets, and the matching empty model. */
function setupFor(catalog: TestCatalog, shapes: Record<TargetKey, TargetShape>) {
  return async (): Promise<{ model: Model; real: Real }> => {
    // One catalog for the whole file, emptied for every sequence (claim, dispatch and reap act on every run).
    await catalog.pool.query('truncate backstop.targets cascade');
    sequence++;
    const worker = await createTarget(catalog.pool, {
      name: `worker${sequence}`,
      databaseUrl: 'postgres://backstop:secret@127.0.0.1:1/none',
      storeUrl: 'file:///nowhere',
      ...shapes.worker,
    });
    const github = await createTarget(catalog.pool, {
      name: `github${sequence}`,
      databaseUrl: 'postgres://backstop:secret@127.0.0.1:1/none',
      storeUrl: 'file:///nowhere',
      executor: { kind: 'github', owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml', ref: 'main' },
      ...shapes.github,
    });
    return { model: { targets: shapes, runs: [] }, real: { catalog, targets: { worker, github } } };
  };
}

async function statuses(catalog: TestCatalog): Promise<RunStatus[]> {
  const { rows } = await catalog.pool.query<{ status: RunStatus }>('select status from backstop.runs order by created_at, id');
  return rows.map((row) => row.status);
}

describe('run state machine against the real catalog (model-based)', () => {
  let catalog: TestCatalog;

  before(async () => {
    catalog = await createTestCatalog();
  });
  after(async () => {
    await catalog?.close();
  });

  it('every catalog operation does what core/runState.ts says, accepted or refused', async () => {
    await fc.assert(
      fc.asyncProperty(fc.record({ worker: targetShape, github: targetShape }), fc.commands(commands, { maxCommands: 60, size: 'max' }), async (shapes, cmds) => {
        await fc.asyncModelRun(setupFor(catalog, shapes), cmds);
      }),
      { numRuns: Number(process.env.BACKSTOP_MODEL_RUNS ?? 100) },
    );

    // Guard against a vacuous generator: every command was both accepted and refused somewhere
    // (stale and foreign leases are only ever refused; a repeated finalize only accepted).
    const both = ['workerClaim', 'claimById', 'heartbeat:current', 'requestCancel', 'finalize:current', 'release:current', 'reap', 'jobReport', 'dispatch'];
    for (const name of both) {
      assert.ok((tally[name]?.accepted ?? 0) > 0, `${name} was never accepted: ${JSON.stringify(tally)}`);
      assert.ok((tally[name]?.refused ?? 0) > 0, `${name} was never refused: ${JSON.stringify(tally)}`);
    }
    for (const name of ['heartbeat:stale', 'heartbeat:foreign', 'finalize:stale', 'finalize:foreign', 'release:stale']) {
      assert.ok((tally[name]?.refused ?? 0) > 0, `${name} was never tried: ${JSON.stringify(tally)}`);
      assert.equal(tally[name]?.accepted ?? 0, 0, `${name} was accepted: ${JSON.stringify(tally)}`);
    }
    assert.ok((tally['finalize:repeat']?.accepted ?? 0) > 0, `no finalize was repeated: ${JSON.stringify(tally)}`);
    // The reaper's requeue is rarer (claim, expire, reap with attempts left): the examples below replay it.
  });

  // Sequences the generator found or that matter too much to leave to chance, replayed through
  // the same commands (so the model is checked after every step) and then checked by hand.

  it('two queued backups of an exclusive GitHub target: one dispatch pass hands out the oldest only', async () => {
    const shapes = { worker: { exclusive: true, maxAttempts: 1 }, github: { exclusive: true, maxAttempts: 1 } };
    await fc.asyncModelRun(setupFor(catalog, shapes), [new CreateRun('github'), new CreateRun('github'), new Dispatch(), new Dispatch()]);
    assert.deepEqual(await statuses(catalog), ['dispatched', 'queued']);
  });

  it('a GitHub run requeued after its lease expired is dispatched again, with a start deadline of its own', async () => {
    const shapes = { worker: { exclusive: true, maxAttempts: 1 }, github: { exclusive: true, maxAttempts: 2 } };
    await fc.asyncModelRun(setupFor(catalog, shapes), [
      new CreateRun('github'),
      new Dispatch(),
      new ClaimById(0),
      new Expire(0, 'lease'),
      new Reap(),
      new Expire(0, 'startDeadline'),
      new Reap(),
      new Dispatch(),
    ]);
    assert.deepEqual(await statuses(catalog), ['dispatched']);
  });
});
