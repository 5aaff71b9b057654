import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { killAll, startCli, type CliProcess } from './support/cli.ts';
import { adminQuery, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

const RUNS = 200;
const TARGETS = 20;

describe('scale-out: many workers and servers on one catalog', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  const processes: CliProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('tiny');
    await adminQuery('create table t (id int primary key); insert into t select generate_series(1, 10)', [], source.url);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-scale-'));
  });
  after(async () => {
    await killAll(processes);
    await catalog.close();
    await source.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it(`three workers and two servers process ${RUNS} queued runs: each executed exactly once, none left non-terminal`, { timeout: 600_000 }, async () => {
    const targets = [];
    for (let index = 0; index < TARGETS; index++) {
      targets.push(await createTarget(catalog.pool, { name: `scale-${index}`, databaseUrl: source.url, storeUrl: `file://${storeDir}` }));
    }
    for (let index = 0; index < RUNS; index++) {
      await createRun(catalog.pool, { targetId: targets[index % TARGETS]!.id, trigger: 'test', runDeadlineMs: 3_600_000 });
    }
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_LEASE_TTL: '20', BACKSTOP_REAPER_INTERVAL: '1', BACKSTOP_LOG_LEVEL: 'warn' };
    for (let index = 0; index < 3; index++) processes.push(startCli(['worker', '--concurrency', '2', '--poll-interval', '0.2'], env));
    for (let index = 0; index < 2; index++) processes.push(startCli(['server', '--port', '0', '--concurrency', '2', '--poll-interval', '0.2'], env));

    await waitFor(
      'every run terminal',
      async () => {
        const [row] = await adminQuery<{ active: string }>(
          `select count(*) as active from backstop.runs where status in ('queued', 'dispatched', 'running', 'cancelling')`,
          [],
          catalog.url,
        );
        return Number(row!.active) === 0;
      },
      540_000,
      500,
    );
    for (const cli of processes) cli.child.kill('SIGTERM');
    for (const cli of processes) assert.equal((await cli.exited).code, 0, cli.stderr().slice(-2000));

    const runs = await adminQuery<{ status: string; attempt: number; claims: string; finished: string; claimed_by: string; manifests: number }>(
      `select r.status, r.attempt, r.claimed_by,
              (select count(*) from backstop.run_events e where e.run_id = r.id and e.kind = 'claimed') as claims,
              (select count(*) from backstop.run_events e where e.run_id = r.id and e.kind = 'finished') as finished
       from backstop.runs r`,
      [],
      catalog.url,
    );
    assert.equal(runs.length, RUNS);
    const notSucceeded = await adminQuery(
      `select r.id, r.status, r.error_code, r.error_message, r.claimed_by, r.attempt,
              (select json_agg(json_build_object('at', e.at, 'kind', e.kind, 'message', e.message) order by e.id) from backstop.run_events e where e.run_id = r.id) as events
       from backstop.runs r where r.status <> 'succeeded' limit 3`,
      [],
      catalog.url,
    );
    assert.deepEqual(notSucceeded, [], JSON.stringify(notSucceeded, null, 1) + processes.map((cli) => cli.stderr().slice(-1500)).join('\n----\n'));
    assert.deepEqual([...new Set(runs.map((run) => run.status))], ['succeeded']);
    assert.ok(
      runs.every((run) => run.attempt === 1 && Number(run.claims) === 1 && Number(run.finished) === 1),
      'each run claimed and finished exactly once',
    );
    const executors = new Set(runs.map((run) => run.claimed_by.split(':').slice(0, 2).join(':')));
    assert.ok(executors.size >= 3, `work spread over ${executors.size} processes`);
    const manifests = (await fs.readdir(storeDir, { recursive: true })).filter((file) => String(file).endsWith('manifest.json'));
    assert.equal(manifests.length, RUNS, 'one artifact per run');
  });
});
