/**
 * The run state machine, pure. The SQL in src/db/ (runLeases.ts, runRecords.ts,
 * executorRuns.ts) encodes the same transitions as conditional UPDATEs; the status sets below
 * are passed to it as parameters so the two cannot drift apart.
 */
export const runStatuses = ['queued', 'dispatched', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled', 'timed_out'] as const;
export type RunStatus = (typeof runStatuses)[number];

/** A backup, or a restore drill of one (`verify`). */
export const runKinds = ['backup', 'verify'] as const;
export type RunKind = (typeof runKinds)[number];

export const terminalStatuses = ['succeeded', 'failed', 'cancelled', 'timed_out'] as const;
export type TerminalStatus = (typeof terminalStatuses)[number];
export const activeStatuses = ['queued', 'dispatched', 'running', 'cancelling'] as const;
/** Statuses in which a runner holds a lease and may heartbeat, report progress and finalize. */
export const leasedStatuses = ['running', 'cancelling'] as const;
/** Statuses counted by "one executing run per target". */
export const exclusiveStatuses = ['dispatched', 'running', 'cancelling'] as const;
/** What a runner may finalize with. `timed_out` belongs to the reaper alone. */
export const runnerOutcomes = ['succeeded', 'failed', 'cancelled'] as const;
export type RunnerOutcome = (typeof runnerOutcomes)[number];
/** What an executor may end a run with when its job is over without the runner finalizing. */
export const executorOutcomes = ['failed', 'cancelled'] as const;
export type ExecutorOutcome = (typeof executorOutcomes)[number];

export function isTerminal(status: RunStatus): status is TerminalStatus {
  return (terminalStatuses as readonly string[]).includes(status);
}

export interface RunClock {
  /** Database time, in milliseconds since the epoch. */
  now: number;
}

export interface RunState {
  status: RunStatus;
  attempt: number;
  maxAttempts: number;
  leaseId: string | null;
  leaseExpiresAt: number | null;
  startDeadlineAt: number | null;
  deadlineAt: number;
  cancelRequested: boolean;
}

export type RunStateEvent =
  | { type: 'dispatch'; startDeadlineAt: number }
  | { type: 'claim'; leaseId: string; leaseExpiresAt: number }
  | { type: 'heartbeat'; leaseId: string; leaseExpiresAt: number }
  | { type: 'requestCancel' }
  | { type: 'finalize'; leaseId: string; outcome: RunnerOutcome }
  | { type: 'release'; leaseId: string }
  | { type: 'reap' }
  /** The executor's job is over (CI job report, GitHub run completed or refused): no runner can hold the run any more. */
  | { type: 'executorEnd'; outcome: ExecutorOutcome };

export type Transition = { ok: true; state: RunState; changed: boolean } | { ok: false; reason: 'terminal' | 'lease_lost' | 'not_claimable' | 'not_due' | 'invalid' };

/** Whether a non-terminal run is past one of its deadlines at `now`. */
export function isOverdue(state: RunState, now: number): boolean {
  if (isTerminal(state.status)) return false;
  if (now >= state.deadlineAt) return true;
  if (state.startDeadlineAt !== null && (state.status === 'queued' || state.status === 'dispatched')) {
    if (now >= state.startDeadlineAt) return true;
  }
  if (state.status === 'running' || state.status === 'cancelling') {
    return state.leaseExpiresAt === null || now >= state.leaseExpiresAt;
  }
  return false;
}

function holdsLease(state: RunState, leaseId: string, now: number): boolean {
  return (state.status === 'running' || state.status === 'cancelling') && state.leaseId === leaseId && state.leaseExpiresAt !== null && now < state.leaseExpiresAt;
}

/**
 * What a run handed back to the queue (released, or reaped with attempts left) gives up: the
 * lease, and the start deadline, which bounded the dispatch that was used. Left in place, an
 * old start deadline would end a retried GitHub run before it could be dispatched again, with
 * an error saying no executor ever claimed it.
 */
const requeued = { leaseId: null, leaseExpiresAt: null, startDeadlineAt: null } as const;

/** Apply one event. Terminal runs never move; a finalize repeated with the same lease is a no-op success. */
export function applyRunEvent(state: RunState, event: RunStateEvent, clock: RunClock): Transition {
  const { now } = clock;
  if (isTerminal(state.status)) {
    if (event.type === 'finalize' && state.leaseId === event.leaseId && state.status === event.outcome) {
      return { ok: true, state, changed: false };
    }
    if (event.type === 'finalize' || event.type === 'heartbeat' || event.type === 'release') return { ok: false, reason: 'lease_lost' };
    return { ok: false, reason: 'terminal' };
  }
  switch (event.type) {
    case 'dispatch':
      if (state.status !== 'queued') return { ok: false, reason: 'invalid' };
      // Like a claim: a run already past a deadline belongs to the reaper, not to an executor.
      if (isOverdue(state, now) || state.cancelRequested) return { ok: false, reason: 'not_claimable' };
      return { ok: true, changed: true, state: { ...state, status: 'dispatched', startDeadlineAt: event.startDeadlineAt } };
    case 'claim':
      if (state.status !== 'queued' && state.status !== 'dispatched') return { ok: false, reason: 'not_claimable' };
      if (isOverdue(state, now) || state.cancelRequested) return { ok: false, reason: 'not_claimable' };
      if (event.leaseExpiresAt <= now) return { ok: false, reason: 'invalid' };
      return {
        ok: true,
        changed: true,
        state: {
          ...state,
          status: 'running',
          attempt: state.attempt + 1,
          leaseId: event.leaseId,
          leaseExpiresAt: event.leaseExpiresAt,
        },
      };
    case 'heartbeat':
      // Past the hard deadline a heartbeat must not keep the run alive (renewLease checks deadline_at > now()).
      if (!holdsLease(state, event.leaseId, now) || now >= state.deadlineAt) return { ok: false, reason: 'lease_lost' };
      if (event.leaseExpiresAt <= now) return { ok: false, reason: 'invalid' };
      return { ok: true, changed: true, state: { ...state, leaseExpiresAt: event.leaseExpiresAt } };
    case 'requestCancel':
      if (state.status === 'queued' || state.status === 'dispatched') {
        return { ok: true, changed: true, state: { ...state, status: 'cancelled', cancelRequested: true } };
      }
      return { ok: true, changed: state.status !== 'cancelling', state: { ...state, status: 'cancelling', cancelRequested: true } };
    case 'finalize':
      if (!holdsLease(state, event.leaseId, now)) return { ok: false, reason: 'lease_lost' };
      return { ok: true, changed: true, state: { ...state, status: event.outcome } };
    case 'release':
      // A worker shutting down hands a run back to the queue; a run being cancelled cannot be handed back.
      if (!holdsLease(state, event.leaseId, now) || state.status !== 'running') return { ok: false, reason: 'lease_lost' };
      return { ok: true, changed: true, state: { ...state, status: 'queued', ...requeued } };
    case 'reap': {
      if (!isOverdue(state, now)) return { ok: false, reason: 'not_due' };
      const leaseExpired = (state.status === 'running' || state.status === 'cancelling') && now < state.deadlineAt;
      if (leaseExpired && state.status === 'running' && state.attempt < state.maxAttempts) {
        return { ok: true, changed: true, state: { ...state, status: 'queued', ...requeued } };
      }
      return { ok: true, changed: true, state: { ...state, status: 'timed_out' } };
    }
    case 'executorEnd':
      // Whatever the lease: the job that could have held it has ended. The lease id stays, so
      // a runner repeating the same outcome still gets the idempotent success.
      return {
        ok: true,
        changed: true,
        state: { ...state, status: event.outcome, cancelRequested: state.cancelRequested || event.outcome === 'cancelled' },
      };
  }
}
