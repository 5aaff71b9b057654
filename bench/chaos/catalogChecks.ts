import type { Queryable } from '../../src/db/pool.ts';
import type { FaultRecord, Outage } from './faults.ts';

/**
 * Invariants read from the catalog with plain SQL and judged here, with a state machine of
 * its own (not Backstop's src/core/runState.ts): the checker must not share the bugs of the
 * code it checks.
 */

export const invariantNames = {
  terminates: 'every run terminates, within its bound',
  noFalseSuccess: 'no `succeeded` run without a complete manifest and files with the recorded sizes and SHA-256',
  noOrphans: 'no orphaned objects after garbage collection',
  onceOnly: 'no attempt executed twice',
  eventsConsistent: "every run's events are consistent with its final status",
  oneActivePerTarget: 'at most one executing run per exclusive target',
  restoreMatches: 'sampled backups restore with standard tools to the source content',
} as const;
export type InvariantName = keyof typeof invariantNames;

export interface Violation {
  invariant: InvariantName;
  runId?: string;
  detail: string;
}

export interface CatalogArtifact {
  storeUrl: string;
  prefix: string;
  manifest: { name: string; size: number; sha256: string };
  files: { name: string; size: number; sha256: string }[];
}

export interface CatalogRun {
  id: string;
  target: string;
  status: string;
  attempt: number;
  exclusive: boolean;
  errorCode: string | null;
  errorMessage: string | null;
  artifact: CatalogArtifact | null;
  createdAt: string;
  /** Database times in microseconds since the epoch. */
  finishedUs: number | null;
  leaseExpiresUs: number | null;
  deadlineUs: number;
}

export interface CatalogEvent {
  id: number;
  runId: string;
  attempt: number;
  kind: string;
  status: string | null;
  atUs: number;
  message: string | null;
}

export interface CatalogSnapshot {
  runs: CatalogRun[];
  events: Map<string, CatalogEvent[]>;
}

const us = (column: string) => `(extract(epoch from ${column}) * 1000000)::bigint`;

export async function readCatalog(db: Queryable): Promise<CatalogSnapshot> {
  const { rows: runs } = await db.query<CatalogRun>(
    `select r.id, t.name as target, r.status, r.attempt, r.exclusive, r.error_code as "errorCode", r.error_message as "errorMessage",
            r.artifact, r.created_at as "createdAt", ${us('r.finished_at')} as "finishedUs", ${us('r.lease_expires_at')} as "leaseExpiresUs",
            ${us('r.deadline_at')} as "deadlineUs"
     from backstop.runs r join backstop.targets t on t.id = r.target_id order by r.created_at, r.id`,
  );
  const { rows } = await db.query<CatalogEvent>(`select id, run_id as "runId", attempt, kind, status, ${us('at')} as "atUs", message from backstop.run_events order by run_id, id`);
  const events = new Map<string, CatalogEvent[]>();
  for (const event of rows) {
    const list = events.get(event.runId) ?? [];
    list.push(event);
    events.set(event.runId, list);
  }
  return { runs, events };
}

const ACTIVE = new Set(['queued', 'dispatched', 'running', 'cancelling']);
const LEASED = new Set(['running', 'cancelling']);

export interface AttemptRecord {
  runId: string;
  attempt: number;
  target: string;
  exclusive: boolean;
  claimedUs: number;
  /** The claim event's id: ids come from one sequence, in the order the statements ran. */
  claimEventId: number;
  end: { kind: string; status: string | null; atUs: number; eventId: number } | null;
  dumpsStarted: number;
}

/**
 * Walks each run's events through the run lifecycle (DESIGN.md): created → claimed → …, with
 * the attempts they belong to. Returns the attempts, for the timing and overlap checks.
 */
export function checkRunEvents(snapshot: CatalogSnapshot, violations: Violation[]): AttemptRecord[] {
  const attempts: AttemptRecord[] = [];
  for (const run of snapshot.runs) {
    const events = snapshot.events.get(run.id) ?? [];
    const fail = (invariant: InvariantName, detail: string) => violations.push({ invariant, runId: run.id, detail });
    let state = 'none';
    let attempt = 0;
    let claims = 0;
    let terminal: CatalogEvent | null = null;
    let current: AttemptRecord | null = null;
    const expect = (event: CatalogEvent, allowed: string[]) => {
      if (!allowed.includes(state)) fail('eventsConsistent', `event #${event.id} ${event.kind} (→ ${event.status}) while the run was ${state}`);
    };
    const endAttempt = (event: CatalogEvent) => {
      if (!current) return;
      if (event.attempt !== current.attempt) fail('eventsConsistent', `event #${event.id} ${event.kind} names attempt ${event.attempt}, the run is at attempt ${current.attempt}`);
      current.end = { kind: event.kind, status: event.status, atUs: event.atUs, eventId: event.id };
      current = null;
    };
    for (const event of events) {
      if (terminal) {
        // Garbage collection records, after the end, each multipart upload it aborted for a
        // runner that died mid-upload (a runner cannot write then: its events are fenced).
        if (event.kind === 'upload_aborted' && event.status === terminal.status) continue;
        fail('eventsConsistent', `event #${event.id} ${event.kind} after the terminal event #${terminal.id} (${terminal.status})`);
        continue;
      }
      switch (event.kind) {
        case 'created':
          expect(event, ['none']);
          state = 'queued';
          break;
        case 'dispatching':
          expect(event, ['queued']);
          state = 'dispatched';
          break;
        case 'claimed':
          expect(event, ['queued', 'dispatched']);
          claims++;
          if (event.attempt !== attempt + 1)
            fail('onceOnly', `claim event #${event.id} is for attempt ${event.attempt} after attempt ${attempt}: an attempt number claimed twice or skipped`);
          attempt = event.attempt;
          current = { runId: run.id, attempt, target: run.target, exclusive: run.exclusive, claimedUs: event.atUs, claimEventId: event.id, end: null, dumpsStarted: 0 };
          attempts.push(current);
          state = 'running';
          break;
        case 'cancel_requested':
          if (event.status === 'cancelling') {
            expect(event, ['running', 'cancelling']);
            state = 'cancelling';
          } else {
            expect(event, ['queued', 'dispatched']);
            state = event.status ?? 'unknown';
            terminal = event;
          }
          break;
        case 'requeued':
        case 'released':
          expect(event, event.kind === 'released' ? ['running'] : ['running', 'cancelling']);
          endAttempt(event);
          state = 'queued';
          break;
        case 'finished':
        case 'reaped':
        case 'executor_ended':
          expect(event, event.kind === 'finished' ? ['running', 'cancelling'] : [...ACTIVE]);
          if (event.kind === 'finished' && !['succeeded', 'failed', 'cancelled'].includes(event.status ?? ''))
            fail('eventsConsistent', `finish event #${event.id} with status ${event.status}`);
          if (event.kind === 'reaped' && event.status !== 'timed_out') fail('eventsConsistent', `reap event #${event.id} with status ${event.status}`);
          endAttempt(event);
          state = event.status ?? 'unknown';
          terminal = event;
          break;
        default:
          // A runner's own event (dump_started, dump_stored, …): written only under its lease.
          if (!LEASED.has(state) || !current || event.attempt !== current.attempt) {
            fail(
              'onceOnly',
              `runner event #${event.id} ${event.kind} of attempt ${event.attempt} while the run was ${state}${current ? ` at attempt ${current.attempt}` : ''}: a runner wrote without holding the lease`,
            );
          }
          if (event.kind === 'dump_started' && current) {
            current.dumpsStarted++;
            if (current.dumpsStarted > 1) fail('onceOnly', `attempt ${current.attempt} started its dump ${current.dumpsStarted} times`);
          }
      }
    }
    if (ACTIVE.has(run.status)) continue; // reported by the termination check
    if (!terminal) {
      fail('eventsConsistent', `run is ${run.status} but has no terminal event`);
      continue;
    }
    if (terminal.status !== run.status) fail('eventsConsistent', `run is ${run.status}, its terminal event #${terminal.id} says ${terminal.status}`);
    if (state !== run.status) fail('eventsConsistent', `run is ${run.status}, its events end in ${state}`);
    if (terminal.atUs !== run.finishedUs) fail('eventsConsistent', `finished_at differs from the terminal event's time`);
    if (terminal.attempt !== run.attempt) fail('eventsConsistent', `terminal event is for attempt ${terminal.attempt}, the run is at attempt ${run.attempt}`);
    if (claims !== run.attempt) fail('onceOnly', `${claims} claim event(s) for ${run.attempt} attempt(s)`);
    if (run.status === 'succeeded' && (run.artifact === null || run.errorCode !== null)) fail('noFalseSuccess', 'succeeded without an artifact, or with an error');
    if (run.status !== 'succeeded' && run.artifact !== null) fail('noFalseSuccess', `${run.status} but records an artifact`);
    if (run.status !== 'succeeded' && run.errorCode === null) fail('eventsConsistent', `${run.status} without an error code`);
  }
  return attempts;
}

/**
 * Invariant 5: the executing attempts of an exclusive target never overlap. Ordered by event
 * id, not time: an event's time is its transaction's start (now()), so a claim that started
 * a moment before the reaper's statement but ran after it commits carries an earlier time
 * than the requeue it follows; ids are drawn as the statements run.
 */
export function checkOneActivePerTarget(attempts: readonly AttemptRecord[], violations: Violation[]): void {
  const byTarget = new Map<string, AttemptRecord[]>();
  for (const attempt of attempts) {
    if (!attempt.exclusive) continue;
    byTarget.set(attempt.target, [...(byTarget.get(attempt.target) ?? []), attempt]);
  }
  for (const [target, list] of byTarget) {
    list.sort((a, b) => a.claimEventId - b.claimEventId);
    for (let index = 1; index < list.length; index++) {
      const previous = list[index - 1]!;
      const next = list[index]!;
      if (previous.end === null || next.claimEventId < previous.end.eventId) {
        violations.push({
          invariant: 'oneActivePerTarget',
          runId: next.runId,
          detail: `${target}: attempt ${next.attempt} claimed while run ${previous.runId} attempt ${previous.attempt} was still executing`,
        });
      }
    }
  }
}

/**
 * When a run's reaping is due (its lease or deadline passed), the reaper must act within its
 * interval + 1 s. A catalog outage stops every reaper: the allowance then restarts from the
 * moment the catalog is back.
 */
export function reapBound(dueAtMs: number, reaperIntervalMs: number, outages: readonly Outage[]): number {
  const allowance = reaperIntervalMs + 1000;
  let bound = dueAtMs + allowance;
  for (const outage of [...outages].sort((a, b) => a.from - b.from)) {
    if (outage.from < bound && outage.to + allowance > bound) bound = outage.to + allowance;
  }
  return bound;
}

/** Invariant 1 after the fact: nothing active, and every reaped run reaped within its bound. */
export function checkTermination(snapshot: CatalogSnapshot, options: { reaperIntervalMs: number; outages: readonly Outage[] }, violations: Violation[]): void {
  for (const run of snapshot.runs) {
    if (ACTIVE.has(run.status)) {
      violations.push({ invariant: 'terminates', runId: run.id, detail: `still ${run.status} after everything settled` });
      continue;
    }
    if (run.status !== 'timed_out' || run.finishedUs === null) continue;
    const due = run.errorCode === 'LEASE_EXPIRED' ? run.leaseExpiresUs : run.errorCode === 'DEADLINE_EXCEEDED' ? run.deadlineUs : null;
    if (due === null) continue;
    const bound = reapBound(due / 1000, options.reaperIntervalMs, options.outages);
    if (run.finishedUs / 1000 > bound) {
      violations.push({
        invariant: 'terminates',
        runId: run.id,
        detail: `reaped ${((run.finishedUs / 1000 - due / 1000) / 1000).toFixed(2)} s after its ${run.errorCode === 'LEASE_EXPIRED' ? 'lease expired' : 'deadline'}, bound ${((bound - due / 1000) / 1000).toFixed(2)} s`,
      });
    }
  }
}

export interface FaultTiming {
  faultId: number;
  kind: string;
  /** Attempts held when it struck that ended after it, with how long it took (ms) and how. */
  ended: { runId: string; attempt: number; afterMs: number; how: string }[];
  /** The bound checked (kill -9 and SIGSTOP), ms; null when none applies. */
  boundMs: number | null;
}

/**
 * For every fault: how long after it the attempts it caught ended in the catalog (terminal,
 * or handed back to the queue for another attempt). For kill -9 and SIGSTOP the bound is
 * lease TTL + reaper interval + 1 s, stretched by any catalog outage in between.
 */
export function timeFaults(
  faults: readonly FaultRecord[],
  attempts: readonly AttemptRecord[],
  options: { leaseTtlMs: number; reaperIntervalMs: number; outages: readonly Outage[] },
  violations: Violation[],
): FaultTiming[] {
  const byKey = new Map(attempts.map((attempt) => [`${attempt.runId}/${attempt.attempt}`, attempt]));
  const timings: FaultTiming[] = [];
  for (const fault of faults) {
    if (fault.at === null) continue;
    const bounded = fault.planned.kind === 'kill-9' || fault.planned.kind === 'sigstop';
    const timing: FaultTiming = { faultId: fault.planned.id, kind: fault.planned.kind, ended: [], boundMs: bounded ? options.leaseTtlMs + options.reaperIntervalMs + 1000 : null };
    for (const held of fault.held) {
      const attempt = byKey.get(`${held.runId}/${held.attempt}`);
      if (!attempt?.end) continue;
      const endedAt = attempt.end.atUs / 1000;
      // Ended before the fault struck (it finished between the look and the signal).
      if (endedAt < fault.at) continue;
      const afterMs = endedAt - fault.at;
      timing.ended.push({ runId: held.runId, attempt: held.attempt, afterMs, how: `${attempt.end.kind}${attempt.end.status ? ` → ${attempt.end.status}` : ''}` });
      if (!bounded) continue;
      const bound = reapBound(fault.at + options.leaseTtlMs, options.reaperIntervalMs, options.outages);
      if (endedAt > bound) {
        violations.push({
          invariant: 'terminates',
          runId: held.runId,
          detail: `fault #${fault.planned.id} (${fault.planned.kind} of ${fault.hit}): attempt ${held.attempt} ended ${(afterMs / 1000).toFixed(2)} s later, bound ${((bound - fault.at) / 1000).toFixed(2)} s`,
        });
      }
    }
    timings.push(timing);
  }
  return timings;
}
