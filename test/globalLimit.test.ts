import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { claimNextRun, finalizeRun } from '../src/db/runLeases.ts';
import { createRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';

describe('global limit on executing runs', () => {
  let catalog: TestCatalog;
  before(async () => {
    catalog = await createTestCatalog();
  });
  after(async () => {
    await catalog.close();
  });

  it('ten concurrent claims under a limit of 2 claim exactly 2; finishing one frees one slot', async () => {
    for (let index = 0; index < 6; index++) {
      const target = await createTarget(catalog.pool, { name: `limited-${index}`, databaseUrl: 'postgres://x@127.0.0.1/x', storeUrl: 'file:///tmp/none' });
      await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
    }
    const options = { leaseTtlMs: 60_000, claimedBy: 'test', globalLimit: 2 };
    const claimed = (await Promise.all(Array.from({ length: 10 }, () => claimNextRun(catalog.pool, options)))).filter((run) => run !== null);
    assert.equal(claimed.length, 2);
    assert.equal(await claimNextRun(catalog.pool, options), null);

    await finalizeRun(catalog.pool, { runId: claimed[0]!.id, leaseId: claimed[0]!.leaseId, outcome: 'succeeded' });
    const next = await claimNextRun(catalog.pool, options);
    assert.ok(next);
    assert.equal(await claimNextRun(catalog.pool, options), null);
    // Without a limit the rest are claimable.
    assert.ok(await claimNextRun(catalog.pool, { leaseTtlMs: 60_000, claimedBy: 'test' }));
  });
});
