import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { planGarbage, type CatalogRun, type ExaminedPrefix, type ManifestCheck } from '../src/core/planGarbage.ts';
import { planRetention, type RetentionBackup, type RetentionPolicy } from '../src/core/planRetention.ts';
import { runStatuses } from '../src/core/runState.ts';

/**
 * planRetention against arbitrary backup histories and policies. Times are drawn from a two-year
 * window with many backups close together (several per day, per week) so that periods collide
 * often; `now` is sometimes before the newest backups (a clock the plan cannot trust).
 */

const T0 = Date.UTC(2024, 0, 1);
const SPAN = 2 * 365 * 86_400_000;

const backupsArbitrary: fc.Arbitrary<RetentionBackup[]> = fc.uniqueArray(
  fc.record({
    id: fc.uuid(),
    // Mostly clustered around a few dense weeks, sometimes anywhere in the span.
    takenAt: fc.oneof(
      fc.integer({ min: T0, max: T0 + SPAN }),
      fc.integer({ min: T0 + 30 * 86_400_000, max: T0 + 44 * 86_400_000 }),
      fc.integer({ min: T0 + 400 * 86_400_000, max: T0 + 402 * 86_400_000 }),
    ),
    verified: fc.boolean(),
  }),
  { selector: (backup) => backup.id, maxLength: 60 },
);

const policyArbitrary: fc.Arbitrary<RetentionPolicy> = fc.record(
  {
    keepLast: fc.integer({ min: 0, max: 8 }),
    daily: fc.integer({ min: 0, max: 10 }),
    weekly: fc.integer({ min: 0, max: 6 }),
    monthly: fc.integer({ min: 0, max: 6 }),
    timezone: fc.constantFrom('UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Pacific/Chatham'),
  },
  { requiredKeys: [] },
);

const nowArbitrary = fc.integer({ min: T0 + 300 * 86_400_000, max: T0 + SPAN + 86_400_000 });

const newestFirst = (backups: readonly RetentionBackup[]) => [...backups].sort((a, b) => b.takenAt - a.takenAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));

/** An independent day key: the calendar date in `timezone`, as sv-SE prints it (YYYY-MM-DD). */
const dayFormats = new Map<string, Intl.DateTimeFormat>();
const dayIn = (timezone: string, at: number) => {
  let format = dayFormats.get(timezone);
  if (!format) {
    format = new Intl.DateTimeFormat('sv-SE', { timeZone: timezone, dateStyle: 'short' });
    dayFormats.set(timezone, format);
  }
  return format.format(new Date(at));
};

describe('planRetention (property-based)', () => {
  const params = { numRuns: 400 };

  it('keeps and deletes every backup exactly once', () => {
    fc.assert(
      fc.property(backupsArbitrary, policyArbitrary, nowArbitrary, (backups, policy, now) => {
        const plan = planRetention(backups, policy, now);
        const ids = [...plan.keep.map((kept) => kept.id), ...plan.delete.map((doomed) => doomed.id)].sort();
        assert.deepEqual(ids, backups.map((backup) => backup.id).sort());
        for (const kept of plan.keep) assert.ok(kept.reasons.length > 0);
      }),
      params,
    );
  });

  it('never deletes the newest backup nor the newest verified one, whatever the policy', () => {
    fc.assert(
      fc.property(backupsArbitrary, policyArbitrary, nowArbitrary, (backups, policy, now) => {
        const plan = planRetention(backups, policy, now);
        const deleted = new Set(plan.delete.map((doomed) => doomed.id));
        const sorted = newestFirst(backups);
        if (sorted[0]) assert.ok(!deleted.has(sorted[0].id), 'the newest backup was deleted');
        const newestVerified = sorted.find((backup) => backup.verified);
        if (newestVerified) assert.ok(!deleted.has(newestVerified.id), 'the newest verified backup was deleted');
        for (const backup of backups) if (backup.takenAt > now) assert.ok(!deleted.has(backup.id), 'a backup from after "now" was deleted');
      }),
      params,
    );
  });

  it('keep-last N keeps the N newest', () => {
    fc.assert(
      fc.property(backupsArbitrary, policyArbitrary, nowArbitrary, (backups, policy, now) => {
        const plan = planRetention(backups, policy, now);
        const kept = new Map(plan.keep.map((entry) => [entry.id, entry.reasons]));
        const newest = newestFirst(backups).slice(0, policy.keepLast ?? 0);
        for (const backup of newest) assert.ok(kept.get(backup.id)?.some((reason) => reason.rule === 'last'));
        assert.equal(plan.keep.filter((entry) => entry.reasons.some((reason) => reason.rule === 'last')).length, newest.length);
      }),
      params,
    );
  });

  it('daily, weekly and monthly keeps cover distinct periods, each with its newest backup, at most N of them', () => {
    fc.assert(
      fc.property(backupsArbitrary, policyArbitrary, nowArbitrary, (backups, policy, now) => {
        const plan = planRetention(backups, policy, now);
        const timezone = policy.timezone ?? 'UTC';
        const byId = new Map(backups.map((backup) => [backup.id, backup]));
        for (const rule of ['daily', 'weekly', 'monthly'] as const) {
          const periods = plan.keep.flatMap((entry) => entry.reasons.filter((reason) => reason.rule === rule).map((reason) => ({ id: entry.id, period: reason.period! })));
          assert.equal(new Set(periods.map((p) => p.period)).size, periods.length, `${rule}: two backups kept for one period`);
          assert.ok(periods.length <= (policy[rule] ?? 0));
          if (rule === 'daily') {
            for (const { id, period } of periods) {
              const backup = byId.get(id)!;
              assert.equal(period, dayIn(timezone, backup.takenAt), 'daily period is the calendar day in the policy time zone');
              const sameDay = backups.filter((other) => dayIn(timezone, other.takenAt) === period);
              assert.equal(newestFirst(sameDay)[0]!.id, id, 'the backup kept for a day is that day’s newest');
            }
            // As many days as asked for, or every day there is.
            const allDays = new Set(backups.map((backup) => dayIn(timezone, backup.takenAt)));
            assert.equal(periods.length, Math.min(policy.daily ?? 0, allDays.size));
          }
        }
      }),
      params,
    );
  });

  it('is idempotent: planning again on the kept set deletes nothing', () => {
    fc.assert(
      fc.property(backupsArbitrary, policyArbitrary, nowArbitrary, (backups, policy, now) => {
        const first = planRetention(backups, policy, now);
        const keptIds = new Set(first.keep.map((entry) => entry.id));
        const second = planRetention(
          backups.filter((backup) => keptIds.has(backup.id)),
          policy,
          now,
        );
        assert.deepEqual(second.delete, []);
        assert.deepEqual(
          second.keep.map((entry) => entry.id),
          first.keep.map((entry) => entry.id),
        );
      }),
      params,
    );
  });
});

/**
 * planGarbage against arbitrary store folders and catalog rows: a few run ids shared by many
 * attempts, so that rows, superseded attempts and copies collide often.
 */
const runIds = ['f47ac10b-58cc-4372-a567-0e02b2c3d479', '9b2f7c1e-4a5d-4e6f-8a7b-1c2d3e4f5a6b', '0c8a4f1e-2b3d-4c5e-9f60-718293a4b5c6'];
const prefixOf = (runId: string, attempt: number) => `app/2024/05/${runId}/attempt-${attempt}/`;

const manifestArbitrary: fc.Arbitrary<ManifestCheck> = fc.oneof(
  fc.constant({ state: 'absent' } as const),
  fc.constant({ state: 'valid' } as const),
  fc.constant({ state: 'invalid', problem: 'not its own' } as const),
  fc.constant({ state: 'unreadable', problem: 'store error' } as const),
);

const prefixesArbitrary: fc.Arbitrary<ExaminedPrefix[]> = fc
  .uniqueArray(fc.record({ runId: fc.constantFrom(...runIds), attempt: fc.integer({ min: 1, max: 3 }), manifest: manifestArbitrary, newestAt: fc.integer({ min: 0, max: 2000 }) }), {
    selector: (entry) => `${entry.runId}/${entry.attempt}`,
    maxLength: 9,
  })
  .map((entries) =>
    entries.map((entry) => ({
      prefix: prefixOf(entry.runId, entry.attempt),
      runId: entry.runId,
      attempt: entry.attempt,
      hasManifest: entry.manifest.state !== 'absent',
      objects: 1,
      newestAt: entry.newestAt,
      manifest: entry.manifest,
    })),
  );

const runsArbitrary: fc.Arbitrary<Map<string, CatalogRun>> = fc
  .array(
    fc.record({
      runId: fc.constantFrom(...runIds),
      status: fc.constantFrom(...runStatuses),
      ofTarget: fc.boolean(),
      attempt: fc.integer({ min: 1, max: 3 }),
      misplaced: fc.boolean(),
      pruned: fc.boolean(),
    }),
    { maxLength: 3 },
  )
  .map((rows) => {
    const runs = new Map<string, CatalogRun>();
    for (const row of rows) {
      runs.set(row.runId, {
        status: row.status,
        ofTarget: row.ofTarget,
        attempt: row.attempt,
        artifactProblem: row.misplaced ? 'it records its artifact in file:///victim' : null,
        artifactPrefix: row.status !== 'succeeded' ? null : row.misplaced ? 'victim/' : prefixOf(row.runId, row.attempt),
        pruned: row.status === 'succeeded' && row.pruned,
      });
    }
    return runs;
  });

describe('planGarbage (property-based)', () => {
  const params = { numRuns: 1000 };
  const options = { now: 1000, gracePeriodMs: 100 };

  it('a prefix with a valid binding manifest is never deleted unless its run is a succeeded backup of this target recorded where Backstop puts it, at another attempt', () => {
    fc.assert(
      fc.property(prefixesArbitrary, runsArbitrary, (prefixes, runs) => {
        const plan = planGarbage(prefixes, runs, options);
        const byPrefix = new Map(prefixes.map((entry) => [entry.prefix, entry]));
        for (const doomed of [...plan.delete, ...plan.waiting]) {
          const examined = byPrefix.get(doomed.prefix)!;
          if (examined.manifest.state !== 'valid') continue;
          const run = runs.get(doomed.runId);
          assert.ok(run, `${doomed.prefix}: a complete backup without a row was planned for deletion`);
          assert.equal(run.status, 'succeeded', `${doomed.prefix}: deleted on a ${run.status} row`);
          assert.ok(run.ofTarget && run.artifactProblem === null, `${doomed.prefix}: deleted on the word of a row that is not this target's own`);
          assert.notEqual(run.attempt, doomed.attempt, `${doomed.prefix}: the live attempt was deleted`);
          assert.equal(doomed.reason, 'superseded-attempt');
        }
        // And every complete backup that is neither live, nor in progress, nor superseded is reported.
        for (const examined of prefixes) {
          const run = runs.get(examined.runId);
          const planned = [...plan.delete, ...plan.waiting].some((entry) => entry.prefix === examined.prefix);
          const unknown = plan.unknown.some((entry) => entry.prefix === examined.prefix);
          const live = run?.status === 'succeeded' && run.artifactPrefix === examined.prefix;
          const active = run !== undefined && ['queued', 'dispatched', 'running', 'cancelling'].includes(run.status);
          if (examined.manifest.state === 'valid' && !live && !active) assert.ok(planned || unknown, `${examined.prefix}: neither collected nor reported`);
          if (unknown) assert.ok(!planned, `${examined.prefix}: both unknown and collected`);
        }
      }),
      params,
    );
  });

  it('never deletes on a failed read, a run in progress, a live artifact, or before the grace period', () => {
    fc.assert(
      fc.property(prefixesArbitrary, runsArbitrary, (prefixes, runs) => {
        const plan = planGarbage(prefixes, runs, options);
        const byPrefix = new Map(prefixes.map((entry) => [entry.prefix, entry]));
        for (const doomed of plan.delete) {
          const examined = byPrefix.get(doomed.prefix)!;
          const run = runs.get(doomed.runId);
          assert.notEqual(examined.manifest.state, 'unreadable', `${doomed.prefix}: deleted on a failed read`);
          assert.ok(!run || !['queued', 'dispatched', 'running', 'cancelling'].includes(run.status), `${doomed.prefix}: a run in progress lost its files`);
          assert.ok(!(run?.status === 'succeeded' && run.artifactPrefix === doomed.prefix), `${doomed.prefix}: a live artifact was deleted`);
          assert.ok(examined.newestAt <= options.now - options.gracePeriodMs, `${doomed.prefix}: deleted inside the grace period`);
        }
        for (const waiting of plan.waiting) assert.ok(byPrefix.get(waiting.prefix)!.newestAt > options.now - options.gracePeriodMs);
      }),
      params,
    );
  });
});
