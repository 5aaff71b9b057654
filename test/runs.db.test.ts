import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { isBackstopError } from '../src/core/errors.ts';
import type { Artifact } from '../src/core/artifact.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { claimNextRun, claimRunById, finalizeRun, reapRuns, releaseRun, renewLease } from '../src/db/runLeases.ts';
import { createRun, getRun, requestCancel, type ClaimedRun, type RunRecord } from '../src/db/runRecords.ts';
import { createTarget, type TargetRecord } from '../src/db/targets.ts';
import { openConnections, type Connections } from './support/connections.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { sampleProgress, withoutTimestamp } from './support/progress.ts';
import { waitFor } from './support/wait.ts';

/**
 * The run queries against a real catalog: leases, fencing, idempotent finalize, one executing
 * run per target under real concurrency, and the reaper. Every expiry is decided by the
 * database clock; the test only polls.
 */

const SHORT_TTL_MS = 300;
const LONG_TTL_MS = 60_000;
const HOUR_MS = 3_600_000;

const artifact: Artifact = {
  storeUrl: 'file:///nowhere',
  prefix: 'db/2025/01/run/attempt-1/',
  manifest: { name: 'manifest.json', size: 10, sha256: 'a'.repeat(64) },
  files: [{ name: 'dump.pgcustom.zst', size: 100, sha256: 'b'.repeat(64) }],
};

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isBackstopError(error), `expected a BackstopError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

describe('run queries against a real catalog', () => {
  let catalog: TestCatalog;
  let connections: Connections | undefined;
  let targetCount = 0;

  beforeEach(async () => {
    catalog = await createTestCatalog();
  });

  afterEach(async () => {
    await connections?.close();
    connections = undefined;
    await catalog.close();
  });

  const target = (options: { exclusive?: boolean; maxAttempts?: number } = {}): Promise<TargetRecord> =>
    createTarget(catalog.pool, {
      name: `t${++targetCount}`,
      databaseUrl: 'postgres://backstop:secret@127.0.0.1:1/none',
      storeUrl: 'file:///nowhere',
      ...options,
    });

  const queue = (targetId: string, runDeadlineMs = HOUR_MS): Promise<RunRecord> => createRun(catalog.pool, { targetId, trigger: 'test', runDeadlineMs });

  const claim = (runId: string, leaseTtlMs = LONG_TTL_MS): Promise<ClaimedRun> => claimRunById(catalog.pool, runId, { leaseTtlMs, claimedBy: 'test-runner' });

  const kinds = async (runId: string) => (await listRunEvents(catalog.pool, runId)).map((event) => event.kind);

  const leaseIdOf = async (runId: string): Promise<string | null> =>
    (await catalog.pool.query<{ lease_id: string | null }>('select lease_id from backstop.runs where id = $1', [runId])).rows[0]!.lease_id;

  /** Polls the reaper until it has handled this run (every expiry is the database's). */
  const waitUntilReaped = (runId: string) => waitFor(`run ${runId} reaped`, async () => (await reapRuns(catalog.pool)).find((reaped) => reaped.id === runId), 10_000, 25);

  it('a claim creates a new lease id and bumps the attempt; renewing needs that lease', async () => {
    const { id: targetId } = await target({ maxAttempts: 3 });
    const queued = await queue(targetId);
    assert.equal(queued.status, 'queued');
    assert.equal(queued.attempt, 0);
    assert.equal(await leaseIdOf(queued.id), null);

    const first = await claim(queued.id, SHORT_TTL_MS);
    assert.equal(first.status, 'running');
    assert.equal(first.attempt, 1);
    assert.match(first.leaseId, /^[0-9a-f-]{36}$/);
    assert.equal(first.claimedBy, 'test-runner');

    // A renewal with any other lease id is refused and changes nothing.
    const before = await getRun(catalog.pool, queued.id);
    assert.equal(await renewLease(catalog.pool, { runId: queued.id, leaseId: crypto.randomUUID(), leaseTtlMs: LONG_TTL_MS }), null);
    assert.deepEqual(await getRun(catalog.pool, queued.id), before);

    await waitUntilReaped(queued.id);
    const second = await claim(queued.id, SHORT_TTL_MS);
    assert.equal(second.attempt, 2);
    assert.notEqual(second.leaseId, first.leaseId);
    assert.equal(await renewLease(catalog.pool, { runId: queued.id, leaseId: first.leaseId, leaseTtlMs: LONG_TTL_MS }), null);

    // claimNextRun takes the same path: a third attempt, a third lease.
    await waitUntilReaped(queued.id);
    const third = await claimNextRun(catalog.pool, { leaseTtlMs: LONG_TTL_MS, claimedBy: 'worker' });
    assert.ok(third);
    assert.equal(third.id, queued.id);
    assert.equal(third.attempt, 3);
    assert.ok(third.leaseId !== first.leaseId && third.leaseId !== second.leaseId);

    const renewed = await renewLease(catalog.pool, { runId: queued.id, leaseId: third.leaseId, leaseTtlMs: LONG_TTL_MS, progress: sampleProgress() });
    assert.deepEqual(renewed && { status: renewed.status, cancelRequested: renewed.cancelRequested }, { status: 'running', cancelRequested: false });
    const { rows } = await catalog.pool.query<{ ok: boolean }>(`select lease_expires_at > now() + interval '50 seconds' as ok from backstop.runs where id = $1`, [queued.id]);
    assert.equal(rows[0]!.ok, true, 'the lease was extended by the TTL from database time');
    const progress = (await getRun(catalog.pool, queued.id)).progress;
    assert.deepEqual(withoutTimestamp(progress), sampleProgress());
    assert.match(progress?.updatedAt ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'stamped with the catalog clock');
    assert.deepEqual(await kinds(queued.id), ['created', 'claimed', 'requeued', 'claimed', 'requeued', 'claimed']);
  });

  it('finalize is idempotent with the same lease and outcome, refused otherwise, and never changes a terminal run', async () => {
    const { id: targetId } = await target();
    const run = await claim((await queue(targetId)).id);

    const finished = await finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'succeeded', artifact });
    assert.equal(finished.status, 'succeeded');
    assert.deepEqual(finished.artifact, artifact);
    assert.ok(finished.finishedAt);

    const again = await finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'succeeded', artifact });
    assert.deepEqual(again, finished);

    await rejectsWith(finalizeRun(catalog.pool, { runId: run.id, leaseId: crypto.randomUUID(), outcome: 'succeeded', artifact }), 'LEASE_LOST');
    await rejectsWith(finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'failed', error: { code: 'DUMP_FAILED', message: 'late' } }), 'LEASE_LOST');
    await rejectsWith(finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'cancelled' }), 'LEASE_LOST');
    assert.equal(await renewLease(catalog.pool, { runId: run.id, leaseId: run.leaseId, leaseTtlMs: LONG_TTL_MS }), null);
    assert.equal(await releaseRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, reason: 'late' }), false);
    await rejectsWith(requestCancel(catalog.pool, run.id), 'RUN_ALREADY_TERMINAL');
    await rejectsWith(claim(run.id), 'RUN_ALREADY_TERMINAL');

    // Even past every deadline, the reaper leaves a terminal run alone.
    await catalog.pool.query(`update backstop.runs set deadline_at = now() - interval '1 second', lease_expires_at = now() - interval '1 second' where id = $1`, [run.id]);
    const pastDeadlines = await getRun(catalog.pool, run.id);
    assert.deepEqual(await reapRuns(catalog.pool), []);
    assert.deepEqual(await getRun(catalog.pool, run.id), pastDeadlines);
    // The repeated finalize still succeeds once the lease has run out: it changes nothing.
    assert.equal((await finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'succeeded', artifact })).status, 'succeeded');
    assert.deepEqual(await getRun(catalog.pool, run.id), pastDeadlines);
    assert.deepEqual(await kinds(run.id), ['created', 'claimed', 'finished']);
  });

  it('a runner whose lease expired cannot finalize, even before the reaper comes', async () => {
    const { id: targetId } = await target();
    const run = await claim((await queue(targetId)).id, SHORT_TTL_MS);
    await waitFor('lease expired by the database clock', async () => {
      const { rows } = await catalog.pool.query<{ expired: boolean }>('select lease_expires_at <= now() as expired from backstop.runs where id = $1', [run.id]);
      return rows[0]!.expired;
    });
    await rejectsWith(finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'succeeded', artifact }), 'LEASE_LOST');
    assert.equal(await renewLease(catalog.pool, { runId: run.id, leaseId: run.leaseId, leaseTtlMs: LONG_TTL_MS }), null);
    assert.equal((await getRun(catalog.pool, run.id)).status, 'running');
    const reaped = await reapRuns(catalog.pool);
    assert.deepEqual(reaped, [{ id: run.id, previousStatus: 'running', status: 'timed_out', errorCode: 'LEASE_EXPIRED' }]);
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.error?.code, 'LEASE_EXPIRED');
    assert.equal(ended.artifact, null);
  });

  it('at most one executing run per exclusive target when 10 claims race for 10 queued runs; other targets still claimed', async () => {
    const busy = await target();
    const others = [await target(), await target()];
    const busyRuns: RunRecord[] = [];
    for (let i = 0; i < 10; i++) busyRuns.push(await queue(busy.id));
    const otherRuns = [await queue(others[0]!.id), await queue(others[1]!.id)];

    connections = await openConnections(catalog.url, 12);
    const claimed = await Promise.all(connections.clients.map((client, index) => claimNextRun(client, { leaseTtlMs: LONG_TTL_MS, claimedBy: `racer-${index}` })));
    const won = claimed.filter((run): run is ClaimedRun => run !== null);
    const busyWon = won.filter((run) => run.targetId === busy.id);
    assert.equal(busyWon.length, 1, `claimed for the exclusive target: ${busyWon.map((run) => run.id).join(', ')}`);
    assert.deepEqual(
      won
        .filter((run) => run.targetId !== busy.id)
        .map((run) => run.id)
        .sort(),
      otherRuns.map((run) => run.id).sort(),
    );
    assert.equal(new Set(won.map((run) => run.id)).size, won.length, 'no run claimed twice');

    const { rows } = await catalog.pool.query<{ target_id: string; executing: number }>(
      `select target_id, count(*)::int as executing from backstop.runs where status in ('dispatched', 'running', 'cancelling') group by target_id`,
    );
    assert.deepEqual(Object.fromEntries(rows.map((row) => [row.target_id, row.executing])), { [busy.id]: 1, [others[0]!.id]: 1, [others[1]!.id]: 1 });

    // The nine others stay queued, untouched, and cannot be claimed by id either.
    for (const run of busyRuns.filter((queued) => queued.id !== busyWon[0]!.id)) {
      const now = await getRun(catalog.pool, run.id);
      assert.deepEqual([now.status, now.attempt], ['queued', 0]);
    }
    const waiting = busyRuns.find((queued) => queued.id !== busyWon[0]!.id)!;
    await rejectsWith(claim(waiting.id), 'RUN_NOT_CLAIMABLE');
    assert.equal(await claimNextRun(catalog.pool, { leaseTtlMs: LONG_TTL_MS, claimedBy: 'late' }), null);

    // Once the executing run ends, the next one of that target becomes claimable.
    await finalizeRun(catalog.pool, { runId: busyWon[0]!.id, leaseId: busyWon[0]!.leaseId, outcome: 'succeeded', artifact });
    const next = await claimNextRun(catalog.pool, { leaseTtlMs: LONG_TTL_MS, claimedBy: 'next' });
    assert.equal(next?.targetId, busy.id);
  });

  it('10 concurrent claimRunById calls on 10 runs of one exclusive target: exactly one wins', async () => {
    const busy = await target();
    const runs: RunRecord[] = [];
    for (let i = 0; i < 10; i++) runs.push(await queue(busy.id));
    connections = await openConnections(catalog.url, 10);
    const results = await Promise.allSettled(
      connections.clients.map((client, index) => claimRunById(client, runs[index]!.id, { leaseTtlMs: LONG_TTL_MS, claimedBy: `racer-${index}` })),
    );
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
    for (const result of results) {
      if (result.status === 'rejected') {
        assert.ok(isBackstopError(result.reason, 'RUN_NOT_CLAIMABLE'), String(result.reason));
      }
    }
    const { rows } = await catalog.pool.query<{ count: number }>(`select count(*)::int as count from backstop.runs where status = 'running'`);
    assert.equal(rows[0]!.count, 1);
  });

  it('a non-exclusive target lets several runs execute at once', async () => {
    const shared = await target({ exclusive: false });
    const runs: RunRecord[] = [];
    for (let i = 0; i < 5; i++) runs.push(await queue(shared.id));
    connections = await openConnections(catalog.url, 5);
    const claimed = await Promise.all(connections.clients.map((client) => claimNextRun(client, { leaseTtlMs: LONG_TTL_MS, claimedBy: 'racer' })));
    assert.deepEqual(claimed.map((run) => run?.id).sort(), runs.map((run) => run.id).sort());
    assert.equal(new Set(claimed.map((run) => run?.leaseId)).size, 5);
  });

  it('20 concurrent reapers on 50 overdue runs reap each exactly once', async () => {
    const shared = await target({ exclusive: false });
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await queue(shared.id)).id);
    // Three kinds of overdue: running past its lease, running past its hard deadline, queued past its hard deadline.
    for (const id of ids.slice(0, 30)) await claim(id);
    await catalog.pool.query(`update backstop.runs set lease_expires_at = now() - interval '1 second' where id = any($1::uuid[])`, [ids.slice(0, 20)]);
    await catalog.pool.query(`update backstop.runs set deadline_at = now() - interval '1 second' where id = any($1::uuid[])`, [ids.slice(20)]);

    connections = await openConnections(catalog.url, 20);
    const passes = await Promise.all(connections.clients.map((client) => reapRuns(client)));
    const reapedIds = passes.flat().map((run) => run.id);
    assert.equal(reapedIds.length, 50, `reaped ${reapedIds.length} times in total`);
    assert.deepEqual([...new Set(reapedIds)].sort(), [...ids].sort());

    const { rows } = await catalog.pool.query<{ run_id: string; reaped: number }>(
      `select r.id as run_id, count(e.id) filter (where e.kind = 'reaped')::int as reaped
       from backstop.runs r left join backstop.run_events e on e.run_id = r.id group by r.id`,
    );
    assert.equal(rows.length, 50);
    for (const row of rows) assert.equal(row.reaped, 1, `run ${row.run_id} has ${row.reaped} 'reaped' events`);

    const byCode = new Map<string, number>();
    for (const run of passes.flat()) byCode.set(run.errorCode, (byCode.get(run.errorCode) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(byCode), { LEASE_EXPIRED: 20, DEADLINE_EXCEEDED: 30 });
    const { rows: statuses } = await catalog.pool.query<{ status: string; count: number }>('select status, count(*)::int as count from backstop.runs group by status');
    assert.deepEqual(statuses, [{ status: 'timed_out', count: 50 }]);
    assert.deepEqual(await reapRuns(catalog.pool), []);
  });

  it('with max_attempts 2, an expired lease requeues the run once; the old lease is fenced off; the second expiry times it out', async () => {
    const { id: targetId } = await target({ maxAttempts: 2 });
    const queued = await queue(targetId);
    const first = await claim(queued.id, SHORT_TTL_MS);

    const requeued = await waitUntilReaped(queued.id);
    assert.deepEqual(requeued, { id: queued.id, previousStatus: 'running', status: 'queued', errorCode: 'LEASE_EXPIRED' });
    const afterRequeue = await getRun(catalog.pool, queued.id);
    assert.equal(afterRequeue.status, 'queued');
    assert.equal(afterRequeue.attempt, 1, 'the attempt is kept');
    assert.equal(afterRequeue.leaseExpiresAt, null);
    assert.equal(afterRequeue.claimedBy, null);
    assert.equal(afterRequeue.finishedAt, null);
    assert.equal(afterRequeue.error, null);
    assert.equal(await leaseIdOf(queued.id), null);
    const events = await listRunEvents(catalog.pool, queued.id);
    assert.deepEqual(
      events.map((event) => [event.kind, event.status, event.attempt]),
      [
        ['created', 'queued', 0],
        ['claimed', 'running', 1],
        ['requeued', 'queued', 1],
      ],
    );
    assert.equal(events.at(-1)!.data?.reason, 'LEASE_EXPIRED');

    // The first runner wakes up: everything it tries bounces, and the run stays queued.
    await rejectsWith(finalizeRun(catalog.pool, { runId: queued.id, leaseId: first.leaseId, outcome: 'succeeded', artifact }), 'LEASE_LOST');
    assert.equal(await renewLease(catalog.pool, { runId: queued.id, leaseId: first.leaseId, leaseTtlMs: LONG_TTL_MS }), null);
    assert.equal(await releaseRun(catalog.pool, { runId: queued.id, leaseId: first.leaseId, reason: 'stale' }), false);
    assert.deepEqual(await getRun(catalog.pool, queued.id), afterRequeue);

    const second = await claim(queued.id, SHORT_TTL_MS);
    assert.equal(second.attempt, 2);
    // The stale runner cannot touch the new attempt either.
    await rejectsWith(finalizeRun(catalog.pool, { runId: queued.id, leaseId: first.leaseId, outcome: 'failed' }), 'LEASE_LOST');

    const timedOut = await waitUntilReaped(queued.id);
    assert.deepEqual(timedOut, { id: queued.id, previousStatus: 'running', status: 'timed_out', errorCode: 'LEASE_EXPIRED' });
    const ended = await getRun(catalog.pool, queued.id);
    assert.equal(ended.status, 'timed_out');
    assert.equal(ended.attempt, 2);
    assert.equal(ended.error?.code, 'LEASE_EXPIRED');
    await rejectsWith(finalizeRun(catalog.pool, { runId: queued.id, leaseId: second.leaseId, outcome: 'succeeded', artifact }), 'LEASE_LOST');
    assert.deepEqual(await kinds(queued.id), ['created', 'claimed', 'requeued', 'claimed', 'reaped']);
  });

  it('the reaper leaves a run with a live lease alone', async () => {
    const { id: targetId } = await target({ maxAttempts: 2 });
    const run = await claim((await queue(targetId)).id, LONG_TTL_MS);
    assert.deepEqual(await reapRuns(catalog.pool), []);
    assert.equal((await getRun(catalog.pool, run.id)).status, 'running');
  });

  it('the hard deadline ends a run as timed_out (DEADLINE_EXCEEDED) while its heartbeats keep coming', async () => {
    const { id: targetId } = await target({ maxAttempts: 3 });
    const queued = await queue(targetId, 3_000);
    // A lease long enough that a slow round under load never lets it lapse: only the deadline may end this run.
    const leaseTtlMs = 2_000;
    const run = await claim(queued.id, leaseTtlMs);
    let renewals = 0;
    const refusals: boolean[] = [];
    // Heartbeat every 50 ms and reap on every round, like a live runner next to a reaper.
    const reaped = await waitFor(
      'run reaped at its hard deadline',
      async () => {
        const lease = await renewLease(catalog.pool, { runId: run.id, leaseId: run.leaseId, leaseTtlMs });
        if (lease) renewals++;
        else {
          const { rows } = await catalog.pool.query<{ past: boolean }>('select now() >= deadline_at as past from backstop.runs where id = $1', [run.id]);
          refusals.push(rows[0]!.past);
        }
        return (await reapRuns(catalog.pool)).find((candidate) => candidate.id === run.id);
      },
      10_000,
      50,
    );
    assert.ok(refusals.every(Boolean), 'a heartbeat was refused before the deadline');
    assert.ok(renewals >= 5, `only ${renewals} heartbeats went through before the deadline`);
    assert.deepEqual(reaped, { id: run.id, previousStatus: 'running', status: 'timed_out', errorCode: 'DEADLINE_EXCEEDED' });
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.status, 'timed_out', 'no requeue past the hard deadline, though attempts remain');
    assert.equal(ended.error?.code, 'DEADLINE_EXCEEDED');
    const { rows } = await catalog.pool.query<{ ok: boolean }>('select finished_at >= deadline_at as ok from backstop.runs where id = $1', [run.id]);
    assert.equal(rows[0]!.ok, true);
    assert.equal(await renewLease(catalog.pool, { runId: run.id, leaseId: run.leaseId, leaseTtlMs }), null);
    await rejectsWith(finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'succeeded', artifact }), 'LEASE_LOST');
    assert.deepEqual(await kinds(run.id), ['created', 'claimed', 'reaped']);
  });

  it('renewLease refuses past the hard deadline even while the lease itself is still valid', async () => {
    const { id: targetId } = await target();
    const run = await claim((await queue(targetId)).id, LONG_TTL_MS);
    await catalog.pool.query(`update backstop.runs set deadline_at = now() - interval '1 second' where id = $1`, [run.id]);
    const { rows } = await catalog.pool.query<{ live: boolean }>('select lease_expires_at > now() as live from backstop.runs where id = $1', [run.id]);
    assert.equal(rows[0]!.live, true);
    assert.equal(await renewLease(catalog.pool, { runId: run.id, leaseId: run.leaseId, leaseTtlMs: LONG_TTL_MS }), null);
    assert.deepEqual(await reapRuns(catalog.pool), [{ id: run.id, previousStatus: 'running', status: 'timed_out', errorCode: 'DEADLINE_EXCEEDED' }]);
  });

  it('cancel: a queued run ends cancelled at once; a running one becomes cancelling and the next heartbeat says so', async () => {
    const { id: targetId } = await target({ exclusive: false });
    const queued = await queue(targetId);
    const cancelled = await requestCancel(catalog.pool, queued.id, 'not needed');
    assert.equal(cancelled.status, 'cancelled');
    assert.deepEqual(cancelled.error, { code: 'CANCELLED', message: 'not needed' });
    assert.ok(cancelled.finishedAt && cancelled.cancelRequestedAt);
    await rejectsWith(claim(queued.id), 'RUN_ALREADY_TERMINAL');
    await rejectsWith(requestCancel(catalog.pool, queued.id), 'RUN_ALREADY_TERMINAL');
    assert.deepEqual(await kinds(queued.id), ['created', 'cancel_requested']);

    const run = await claim((await queue(targetId)).id);
    const before = await renewLease(catalog.pool, { runId: run.id, leaseId: run.leaseId, leaseTtlMs: LONG_TTL_MS });
    assert.equal(before?.cancelRequested, false);
    const cancelling = await requestCancel(catalog.pool, run.id);
    assert.equal(cancelling.status, 'cancelling');
    assert.equal(cancelling.finishedAt, null);
    const told = await renewLease(catalog.pool, { runId: run.id, leaseId: run.leaseId, leaseTtlMs: LONG_TTL_MS });
    assert.deepEqual(told && { status: told.status, cancelRequested: told.cancelRequested }, { status: 'cancelling', cancelRequested: true });
    // A cancelling run is not handed back to the queue; its runner ends it cancelled.
    assert.equal(await releaseRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, reason: 'shutdown' }), false);
    const ended = await finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'cancelled', error: { code: 'CANCELLED', message: 'stopped' } });
    assert.equal(ended.status, 'cancelled');
    assert.deepEqual(await kinds(run.id), ['created', 'claimed', 'cancel_requested', 'finished']);
  });

  it('a cancelling run whose runner died is timed out, never requeued', async () => {
    const { id: targetId } = await target({ maxAttempts: 3 });
    const run = await claim((await queue(targetId)).id, SHORT_TTL_MS);
    await requestCancel(catalog.pool, run.id);
    const reaped = await waitUntilReaped(run.id);
    assert.deepEqual(reaped, { id: run.id, previousStatus: 'cancelling', status: 'timed_out', errorCode: 'LEASE_EXPIRED' });
    assert.match((await getRun(catalog.pool, run.id)).error!.message, /while a cancel was pending/);
  });

  it('releaseRun hands a running run back to the queue, and only with the current lease', async () => {
    const { id: targetId } = await target();
    const run = await claim((await queue(targetId)).id);
    assert.equal(await releaseRun(catalog.pool, { runId: run.id, leaseId: crypto.randomUUID(), reason: 'wrong lease' }), false);
    assert.equal((await getRun(catalog.pool, run.id)).status, 'running');

    assert.equal(await releaseRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, reason: 'worker shutting down' }), true);
    const released = await getRun(catalog.pool, run.id);
    assert.equal(released.status, 'queued');
    assert.equal(released.attempt, 1);
    assert.equal(released.leaseExpiresAt, null);
    assert.equal(released.claimedBy, null);
    assert.equal(await leaseIdOf(run.id), null);
    const events = await listRunEvents(catalog.pool, run.id);
    assert.deepEqual(events.at(-1) && [events.at(-1)!.kind, events.at(-1)!.status, events.at(-1)!.message], ['released', 'queued', 'worker shutting down']);

    assert.equal(await releaseRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, reason: 'twice' }), false);
    await rejectsWith(finalizeRun(catalog.pool, { runId: run.id, leaseId: run.leaseId, outcome: 'succeeded', artifact }), 'LEASE_LOST');

    const again = await claimNextRun(catalog.pool, { leaseTtlMs: LONG_TTL_MS, claimedBy: 'another worker' });
    assert.equal(again?.id, run.id);
    assert.equal(again?.attempt, 2);
    assert.notEqual(again?.leaseId, run.leaseId);
  });
});
