import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { applyRunEvent, executorOutcomes, isOverdue, isTerminal, runnerOutcomes, type RunStateEvent, type RunState } from '../src/core/runState.ts';

/**
 * The pure run state machine against arbitrary event sequences. Leases come from a small pool
 * so that stale and current lease ids collide often; the clock only moves forward, by steps
 * small enough that leases are renewed in time in some runs and expire in others.
 */

const T0 = 1_700_000_000_000;
const leasePool = ['lease-a', 'lease-b', 'lease-c'] as const;

interface Step {
  advanceMs: number;
  event: RunStateEvent;
}

const leaseId = fc.constantFrom(...leasePool);
// Offsets may be negative or zero: the machine must refuse a lease that is already over.
const offset = fc.integer({ min: -200, max: 3_000 });

/** Events carry offsets from "now"; they are made absolute when applied. */
type RelativeEvent =
  | { type: 'dispatch'; in: number }
  | { type: 'claim'; leaseId: string; in: number }
  | { type: 'heartbeat'; leaseId: string; in: number }
  | { type: 'requestCancel' }
  | { type: 'finalize'; leaseId: string; outcome: (typeof runnerOutcomes)[number] }
  | { type: 'release'; leaseId: string }
  | { type: 'reap' }
  | { type: 'executorEnd'; outcome: (typeof executorOutcomes)[number] };

const relativeEvent: fc.Arbitrary<RelativeEvent> = fc.oneof(
  fc.record({ type: fc.constant('dispatch' as const), in: fc.integer({ min: -200, max: 20_000 }) }),
  { arbitrary: fc.record({ type: fc.constant('claim' as const), leaseId, in: offset }), weight: 3 },
  { arbitrary: fc.record({ type: fc.constant('heartbeat' as const), leaseId, in: offset }), weight: 3 },
  fc.record({ type: fc.constant('requestCancel' as const) }),
  { arbitrary: fc.record({ type: fc.constant('finalize' as const), leaseId, outcome: fc.constantFrom(...runnerOutcomes) }), weight: 2 },
  fc.record({ type: fc.constant('release' as const), leaseId }),
  { arbitrary: fc.record({ type: fc.constant('reap' as const) }), weight: 2 },
  fc.record({ type: fc.constant('executorEnd' as const), outcome: fc.constantFrom(...executorOutcomes) }),
);

const step = fc.record({ advanceMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 4_000 })), event: relativeEvent });

const scenario = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 3 }),
  deadlineIn: fc.integer({ min: 1, max: 30_000 }),
  steps: fc.array(step, { minLength: 1, maxLength: 60 }),
});

function absolute(event: RelativeEvent, now: number): RunStateEvent {
  switch (event.type) {
    case 'dispatch':
      return { type: 'dispatch', startDeadlineAt: now + event.in };
    case 'claim':
      return { type: 'claim', leaseId: event.leaseId, leaseExpiresAt: now + event.in };
    case 'heartbeat':
      return { type: 'heartbeat', leaseId: event.leaseId, leaseExpiresAt: now + event.in };
    default:
      return event;
  }
}

function queuedRun(maxAttempts: number, deadlineAt: number): RunState {
  return {
    status: 'queued',
    attempt: 0,
    maxAttempts,
    leaseId: null,
    leaseExpiresAt: null,
    startDeadlineAt: null,
    deadlineAt,
    cancelRequested: false,
  };
}

function assertWellFormed(state: RunState, context: string): void {
  if (isTerminal(state.status)) return;
  assert.ok(Number.isFinite(state.deadlineAt), `${context}: non-terminal ${state.status} without a finite deadline`);
  if (state.status === 'running' || state.status === 'cancelling') {
    assert.ok(state.leaseId !== null, `${context}: ${state.status} without a lease id`);
    assert.ok(state.leaseExpiresAt !== null && Number.isFinite(state.leaseExpiresAt), `${context}: ${state.status} without a lease expiry`);
  }
  if (state.status === 'dispatched') {
    assert.ok(state.startDeadlineAt !== null && Number.isFinite(state.startDeadlineAt), `${context}: dispatched without a start deadline`);
  }
}

interface Coverage {
  terminal: Record<string, number>;
  requeued: number;
  refusedStaleLease: number;
  idempotentFinalize: number;
}

/** Replays one scenario, checking every invariant after every event. */
function replay(input: { maxAttempts: number; deadlineIn: number; steps: Step[] | Array<{ advanceMs: number; event: RelativeEvent }> }, coverage?: Coverage): void {
  let now = T0;
  let state = queuedRun(input.maxAttempts, T0 + input.deadlineIn);
  assertWellFormed(state, 'initial');
  for (const [index, { advanceMs, event: relative }] of input.steps.entries()) {
    now += advanceMs;
    const event = absolute(relative as RelativeEvent, now);
    const context = `step ${index} (${event.type} at +${now - T0} ms from ${state.status})`;
    const before = state;
    const result = applyRunEvent(before, event, { now });

    // (a) Terminal is final: only an identical finalize is accepted, and it changes nothing.
    if (isTerminal(before.status)) {
      if (result.ok) {
        assert.equal(event.type, 'finalize', `${context}: accepted on a terminal run`);
        assert.equal(result.changed, false, `${context}: a repeated finalize reported a change`);
        assert.equal(result.state, before, `${context}: a repeated finalize returned another state`);
        if (event.type === 'finalize') {
          assert.equal(event.leaseId, before.leaseId, context);
          assert.equal(event.outcome, before.status, context);
        }
        if (coverage) coverage.idempotentFinalize++;
      }
      continue;
    }

    // (c) A lease id other than the current one is always refused.
    if ((event.type === 'finalize' || event.type === 'heartbeat' || event.type === 'release') && event.leaseId !== before.leaseId) {
      assert.deepEqual(result, { ok: false, reason: 'lease_lost' }, `${context}: stale lease ${event.leaseId} (current ${before.leaseId}) accepted`);
      if (coverage) coverage.refusedStaleLease++;
    }
    // ...and so is the current one once its lease has expired by the clock.
    if ((event.type === 'finalize' || event.type === 'heartbeat') && before.leaseExpiresAt !== null && now >= before.leaseExpiresAt) {
      assert.equal(result.ok, false, `${context}: accepted after the lease expired`);
    }
    // A heartbeat cannot keep a run alive past its hard deadline (renewLease's deadline_at > now()).
    if (event.type === 'heartbeat' && now >= before.deadlineAt) {
      assert.equal(result.ok, false, `${context}: heartbeat accepted past the hard deadline`);
    }

    // (e) Reap fires exactly on overdue runs (the "every run terminates" direction included).
    if (event.type === 'reap') {
      assert.equal(result.ok, isOverdue(before, now), `${context}: reap ok=${result.ok} but isOverdue=${isOverdue(before, now)}`);
    }

    if (!result.ok) continue;
    state = result.state;

    // (d) attempt never decreases, and only a claim moves it (by one).
    assert.ok(state.attempt >= before.attempt, `${context}: attempt went from ${before.attempt} to ${state.attempt}`);
    assert.equal(state.attempt, before.attempt + (event.type === 'claim' ? 1 : 0), `${context}: attempt changed by ${state.attempt - before.attempt}`);
    // (b) Every reachable non-terminal state can be ended by the reaper.
    assertWellFormed(state, context);
    // A claim always hands out the event's lease; finalize only ends with a runner outcome.
    if (event.type === 'claim') assert.equal(state.leaseId, event.leaseId, context);
    if (event.type === 'finalize') assert.equal(state.status, event.outcome, context);
    if (event.type === 'reap') {
      assert.ok(state.status === 'timed_out' || state.status === 'queued', `${context}: reaped into ${state.status}`);
      if (state.status === 'queued') {
        assert.ok(before.status === 'running' && before.attempt < before.maxAttempts && now < before.deadlineAt, `${context}: requeued`);
        assert.equal(state.leaseId, null, context);
        assert.equal(state.leaseExpiresAt, null, context);
        if (coverage) coverage.requeued++;
      }
    }
    if (coverage && isTerminal(state.status)) coverage.terminal[state.status] = (coverage.terminal[state.status] ?? 0) + 1;
  }

  // Whatever happened, a non-terminal run ends at its hard deadline in one reap.
  if (!isTerminal(state.status)) {
    const atDeadline = Math.max(now, state.deadlineAt);
    const reaped = applyRunEvent(state, { type: 'reap' }, { now: atDeadline });
    assert.ok(reaped.ok && reaped.state.status === 'timed_out', `a ${state.status} run did not time out at its deadline`);
  }
}

describe('run state machine (properties)', () => {
  it('holds every invariant over arbitrary event sequences, and the generator reaches every outcome', () => {
    const coverage: Coverage = { terminal: {}, requeued: 0, refusedStaleLease: 0, idempotentFinalize: 0 };
    fc.assert(
      fc.property(scenario, (input) => {
        replay(input, coverage);
      }),
      { numRuns: 3_000 },
    );
    // Guard against a vacuous generator: every interesting path was exercised.
    for (const status of ['succeeded', 'failed', 'cancelled', 'timed_out']) {
      assert.ok((coverage.terminal[status] ?? 0) > 0, `no sequence ended ${status}: ${JSON.stringify(coverage)}`);
    }
    assert.ok(coverage.requeued > 0, `no sequence requeued: ${JSON.stringify(coverage)}`);
    assert.ok(coverage.refusedStaleLease > 0, `no stale lease was tried: ${JSON.stringify(coverage)}`);
    assert.ok(coverage.idempotentFinalize > 0, `no finalize was repeated: ${JSON.stringify(coverage)}`);
  });

  it('once terminal, no event changes the status', () => {
    const terminalState = fc.record({
      status: fc.constantFrom('succeeded', 'failed', 'cancelled', 'timed_out' as const),
      attempt: fc.integer({ min: 0, max: 5 }),
      maxAttempts: fc.integer({ min: 1, max: 5 }),
      leaseId: fc.option(leaseId, { nil: null }),
      leaseExpiresAt: fc.option(fc.integer({ min: T0 - 10_000, max: T0 + 10_000 }), { nil: null }),
      startDeadlineAt: fc.option(fc.integer({ min: T0 - 10_000, max: T0 + 10_000 }), { nil: null }),
      deadlineAt: fc.integer({ min: T0 - 10_000, max: T0 + 10_000 }),
      cancelRequested: fc.boolean(),
    }) as fc.Arbitrary<RunState>;
    fc.assert(
      fc.property(terminalState, relativeEvent, fc.integer({ min: 0, max: 20_000 }), (state, relative, advance) => {
        const now = T0 + advance;
        const event = absolute(relative, now);
        const result = applyRunEvent(state, event, { now });
        if (!result.ok) return;
        assert.equal(event.type, 'finalize');
        assert.equal(result.changed, false);
        assert.equal(result.state.status, state.status);
        assert.equal(result.state, state);
      }),
      { numRuns: 2_000 },
    );
  });

  it('a stale runner resuming after a requeue and a new claim is refused everywhere', () => {
    // Attempt 1 (lease a) stalls, is requeued; attempt 2 (lease b) runs; a's writes bounce.
    replay({
      maxAttempts: 2,
      deadlineIn: 60_000,
      steps: [
        { advanceMs: 0, event: { type: 'claim', leaseId: 'lease-a', in: 1_000 } },
        { advanceMs: 1_500, event: { type: 'reap' } },
        { advanceMs: 10, event: { type: 'claim', leaseId: 'lease-b', in: 1_000 } },
        { advanceMs: 10, event: { type: 'heartbeat', leaseId: 'lease-a', in: 1_000 } },
        { advanceMs: 10, event: { type: 'finalize', leaseId: 'lease-a', outcome: 'succeeded' } },
        { advanceMs: 10, event: { type: 'finalize', leaseId: 'lease-b', outcome: 'failed' } },
        { advanceMs: 10, event: { type: 'finalize', leaseId: 'lease-b', outcome: 'failed' } },
        { advanceMs: 10, event: { type: 'finalize', leaseId: 'lease-b', outcome: 'succeeded' } },
      ],
    });
  });
});

describe('run state machine (examples)', () => {
  const now = T0;
  const queued = queuedRun(1, now + 60_000);
  const running = (overrides: Partial<RunState> = {}): RunState => ({
    ...queued,
    status: 'running',
    attempt: 1,
    leaseId: 'lease-a',
    leaseExpiresAt: now + 1_000,
    ...overrides,
  });

  it('a claim bumps the attempt and hands out the lease', () => {
    const result = applyRunEvent(queued, { type: 'claim', leaseId: 'lease-a', leaseExpiresAt: now + 1_000 }, { now });
    assert.deepEqual(result, { ok: true, changed: true, state: running() });
  });

  it('a claim is refused for a running, cancel-requested or overdue run, and for a lease already over', () => {
    assert.deepEqual(applyRunEvent(running(), { type: 'claim', leaseId: 'lease-b', leaseExpiresAt: now + 1_000 }, { now }), {
      ok: false,
      reason: 'not_claimable',
    });
    assert.deepEqual(applyRunEvent({ ...queued, cancelRequested: true }, { type: 'claim', leaseId: 'lease-b', leaseExpiresAt: now + 1_000 }, { now }), {
      ok: false,
      reason: 'not_claimable',
    });
    assert.deepEqual(applyRunEvent(queued, { type: 'claim', leaseId: 'lease-b', leaseExpiresAt: now + 1_000 }, { now: queued.deadlineAt }), {
      ok: false,
      reason: 'not_claimable',
    });
    const dispatched = { ...queued, status: 'dispatched' as const, startDeadlineAt: now + 100 };
    assert.equal(applyRunEvent(dispatched, { type: 'claim', leaseId: 'lease-b', leaseExpiresAt: now + 1_000 }, { now: now + 100 }).ok, false);
    assert.deepEqual(applyRunEvent(queued, { type: 'claim', leaseId: 'lease-b', leaseExpiresAt: now }, { now }), { ok: false, reason: 'invalid' });
  });

  it('heartbeat and finalize need the current, unexpired lease', () => {
    assert.deepEqual(applyRunEvent(running(), { type: 'heartbeat', leaseId: 'lease-b', leaseExpiresAt: now + 2_000 }, { now }), {
      ok: false,
      reason: 'lease_lost',
    });
    assert.deepEqual(applyRunEvent(running(), { type: 'heartbeat', leaseId: 'lease-a', leaseExpiresAt: now + 2_000 }, { now: now + 1_000 }), {
      ok: false,
      reason: 'lease_lost',
    });
    assert.deepEqual(applyRunEvent(running(), { type: 'finalize', leaseId: 'lease-a', outcome: 'succeeded' }, { now: now + 1_000 }), {
      ok: false,
      reason: 'lease_lost',
    });
    const renewed = applyRunEvent(running(), { type: 'heartbeat', leaseId: 'lease-a', leaseExpiresAt: now + 2_000 }, { now: now + 999 });
    assert.ok(renewed.ok && renewed.state.leaseExpiresAt === now + 2_000);
  });

  it('finalize is idempotent with the same lease and outcome only', () => {
    const done = applyRunEvent(running(), { type: 'finalize', leaseId: 'lease-a', outcome: 'succeeded' }, { now });
    assert.ok(done.ok && done.state.status === 'succeeded');
    const again = applyRunEvent(done.state, { type: 'finalize', leaseId: 'lease-a', outcome: 'succeeded' }, { now: now + 5_000 });
    assert.deepEqual(again, { ok: true, changed: false, state: done.state });
    assert.deepEqual(applyRunEvent(done.state, { type: 'finalize', leaseId: 'lease-a', outcome: 'failed' }, { now }), { ok: false, reason: 'lease_lost' });
    assert.deepEqual(applyRunEvent(done.state, { type: 'finalize', leaseId: 'lease-b', outcome: 'succeeded' }, { now }), { ok: false, reason: 'lease_lost' });
    assert.deepEqual(applyRunEvent(done.state, { type: 'requestCancel' }, { now }), { ok: false, reason: 'terminal' });
    assert.deepEqual(applyRunEvent(done.state, { type: 'reap' }, { now: now + 10_000_000 }), { ok: false, reason: 'terminal' });
  });

  it('cancel: queued ends at once, running becomes cancelling (once), and release is then refused', () => {
    const cancelledQueued = applyRunEvent(queued, { type: 'requestCancel' }, { now });
    assert.ok(cancelledQueued.ok && cancelledQueued.state.status === 'cancelled');
    const cancelling = applyRunEvent(running(), { type: 'requestCancel' }, { now });
    assert.ok(cancelling.ok && cancelling.changed && cancelling.state.status === 'cancelling' && cancelling.state.cancelRequested);
    const twice = applyRunEvent(cancelling.state, { type: 'requestCancel' }, { now });
    assert.ok(twice.ok && !twice.changed);
    assert.deepEqual(applyRunEvent(cancelling.state, { type: 'release', leaseId: 'lease-a' }, { now }), { ok: false, reason: 'lease_lost' });
    const finished = applyRunEvent(cancelling.state, { type: 'finalize', leaseId: 'lease-a', outcome: 'cancelled' }, { now });
    assert.ok(finished.ok && finished.state.status === 'cancelled');
  });

  it('release hands a running run back to the queue without its lease', () => {
    const released = applyRunEvent(running(), { type: 'release', leaseId: 'lease-a' }, { now });
    assert.ok(released.ok);
    assert.deepEqual(released.state, { ...running(), status: 'queued', leaseId: null, leaseExpiresAt: null });
  });

  it('reap: not before the lease expires; requeues while attempts remain; times out at the hard deadline even with a live lease', () => {
    const retrying = running({ maxAttempts: 2 });
    assert.deepEqual(applyRunEvent(retrying, { type: 'reap' }, { now: now + 999 }), { ok: false, reason: 'not_due' });
    const requeued = applyRunEvent(retrying, { type: 'reap' }, { now: now + 1_000 });
    assert.ok(requeued.ok && requeued.state.status === 'queued' && requeued.state.attempt === 1 && requeued.state.leaseId === null);
    const second = applyRunEvent(requeued.state, { type: 'claim', leaseId: 'lease-b', leaseExpiresAt: now + 3_000 }, { now: now + 1_001 });
    assert.ok(second.ok && second.state.attempt === 2);
    const timedOut = applyRunEvent(second.state, { type: 'reap' }, { now: now + 3_000 });
    assert.ok(timedOut.ok && timedOut.state.status === 'timed_out');

    const liveLease = running({ maxAttempts: 3, leaseExpiresAt: queued.deadlineAt + 10_000 });
    const pastDeadline = applyRunEvent(liveLease, { type: 'reap' }, { now: queued.deadlineAt });
    assert.ok(pastDeadline.ok && pastDeadline.state.status === 'timed_out', 'the hard deadline beats a live lease and remaining attempts');
    assert.deepEqual(
      applyRunEvent(liveLease, { type: 'heartbeat', leaseId: 'lease-a', leaseExpiresAt: queued.deadlineAt + 20_000 }, { now: queued.deadlineAt }),
      { ok: false, reason: 'lease_lost' },
      'a heartbeat past the hard deadline is refused, as renewLease refuses it',
    );
  });

  it('a dispatched run times out at its start deadline; a cancelling one is never requeued', () => {
    const dispatched = applyRunEvent(queued, { type: 'dispatch', startDeadlineAt: now + 500 }, { now });
    assert.ok(dispatched.ok && dispatched.state.status === 'dispatched');
    assert.equal(isOverdue(dispatched.state, now + 499), false);
    const reaped = applyRunEvent(dispatched.state, { type: 'reap' }, { now: now + 500 });
    assert.ok(reaped.ok && reaped.state.status === 'timed_out');

    const cancelling = running({ status: 'cancelling', maxAttempts: 5, cancelRequested: true });
    const ended = applyRunEvent(cancelling, { type: 'reap' }, { now: now + 1_000 });
    assert.ok(ended.ok && ended.state.status === 'timed_out');
  });
});
