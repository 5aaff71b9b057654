import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeMachine } from '../bench/machine.ts';
import { faultKinds, processFaultKinds } from '../bench/chaos/plan.ts';
import { renderChaosReport } from '../bench/chaos/report.ts';
import { planFor, resolveChaosOptions, run } from '../bench/chaos/run.ts';

/**
 * The short version of `npm run chaos`: real workers, server, runners, catalog and stores,
 * faults of every kind at seeded moments, then every invariant of DESIGN.md checked. The long
 * version (1,000 runs) is bench/results/latest-chaos.md.
 */
describe('chaos', () => {
  it('the schedule of faults comes from the seed alone', () => {
    const options = resolveChaosOptions({ runs: 20, seed: 7 });
    const plan = planFor(options);
    assert.deepEqual(planFor(resolveChaosOptions({ runs: 20, seed: 7 })), plan);
    assert.notDeepEqual(planFor(resolveChaosOptions({ runs: 20, seed: 8 })).faults, plan.faults);
    for (const kind of faultKinds) assert.ok(plan.faults.filter((fault) => fault.kind === kind).length >= 2, `${kind} planned at least twice`);
    for (const kind of processFaultKinds) {
      const roles = new Set(plan.faults.filter((fault) => fault.kind === kind).map((fault) => fault.process!.replace(/-\d+$/, '')));
      assert.deepEqual([...roles].sort(), ['runner', 'server', 'worker'], `${kind} aimed at every kind of process`);
    }
    const times = plan.faults.map((fault) => fault.at);
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
    );
    assert.ok(times.every((at) => at >= 0 && at <= plan.windowMs));
  });

  it('20 runs under faults of every kind: every invariant holds', { timeout: 900_000 }, async () => {
    const lines: string[] = [];
    const result = await run({ runs: 20, seed: 1, log: (line) => lines.push(line) });
    const report = renderChaosReport(result, { command: 'test/chaos.test.ts', machine: await describeMachine() });
    const context = `${report}\n\nLog:\n${lines.join('\n')}`;
    for (const kind of faultKinds) {
      assert.ok(
        result.faults.some((fault) => fault.planned.kind === kind && fault.at !== null),
        `a ${kind} fault struck\n${context}`,
      );
    }
    assert.equal(
      Object.values(result.statuses).reduce((sum, count) => sum + count, 0),
      result.queued.length,
    );
    assert.deepEqual(
      Object.keys(result.statuses).filter((status) => !['succeeded', 'failed', 'cancelled', 'timed_out'].includes(status)),
      [],
    );
    assert.ok((result.statuses.succeeded ?? 0) > 0, `some runs succeeded\n${context}`);
    assert.ok(result.restores.length > 0 && result.restores.every((restore) => restore.ok), `sampled backups restored\n${context}`);
    assert.deepEqual(result.violations, [], context);
  });
});
