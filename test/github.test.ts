import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { GithubExecutor } from '../src/executors/github/githubExecutor.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { reapRuns } from '../src/db/runLeases.ts';
import { createRun, getRun, requestCancel } from '../src/db/runRecords.ts';
import { createTarget, type TargetRecord } from '../src/db/targets.ts';
import { fastLeaseEnv, killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { startFakeGithub, startTestGithubExecutor, type FakeGithub, type FakeRun } from './support/fakeGithub.ts';
import { createSampleDatabase, createTestCatalog, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

const TOKEN = 'ghp_fake_token_for_tests';

describe('GitHub Actions executor against a fake GitHub validated by its OpenAPI description', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let github: FakeGithub;
  let executor: GithubExecutor;
  let target: TargetRecord;
  let env: Record<string, string>;
  let job: 'run' | 'none' | 'run-blocked' = 'run';
  const jobs: CliProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(300);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-github-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, ...fastLeaseEnv };
    github = await startFakeGithub({ owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml', token: TOKEN });
    target = await createTarget(catalog.pool, {
      name: 'gh',
      databaseUrl: source.url,
      storeUrl: `file://${storeDir}`,
      executor: { kind: 'github', owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml', ref: 'main' },
    });
    // The "job": a real `backstop run RUN_ID`, as the workflow runs it; its exit completes the GitHub run.
    github.onDispatch((run: FakeRun) => {
      if (job === 'none') return;
      run.status = 'in_progress';
      const cli = startCli(['run', run.inputs.run_id!], env);
      jobs.push(cli);
      void cli.exited.then(({ code, signal }) => {
        if (run.status !== 'completed') github.complete(run.id, signal ? 'cancelled' : code === 0 ? 'success' : 'failure');
      });
    });
    executor = startTestGithubExecutor(catalog.pool, github, TOKEN);
  });

  afterEach(async () => {
    // One run per target executes at a time: end whatever a test left behind.
    const { rows } = await catalog.pool.query<{ id: string }>(`select id from backstop.runs where status in ('queued', 'dispatched', 'running', 'cancelling')`);
    for (const row of rows) await requestCancel(catalog.pool, row.id).catch(() => {});
    await executor.tickOnce();
    await killAll(jobs.splice(0));
    job = 'run';
  });

  after(async () => {
    executor.stop();
    await github.close();
    await catalog.close();
    await source.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
    assert.deepEqual(github.violations, [], "every request and response follows GitHub's OpenAPI description");
  });

  const trigger = () => createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 3_600_000 });
  const executorOf = async (runId: string) => (await getRun(catalog.pool, runId)).executor as Record<string, unknown>;

  it('dispatches with return_run_details (200), stores the GitHub run, and the job takes the run to succeeded', async () => {
    const run = await trigger();
    await executor.tickOnce();
    const dispatched = await executorOf(run.id);
    assert.equal(typeof dispatched.workflowRunId, 'number');
    assert.match(String(dispatched.htmlUrl), /^https:\/\/github\.test\/acme\/infra\/actions\/runs\/\d+$/);
    const request = github.requests.find((r) => r.path.endsWith('/dispatches'))!;
    assert.deepEqual(request.body, { ref: 'main', inputs: { run_id: run.id, target: 'gh', pg_major: '15' }, return_run_details: true });
    await waitFor('run succeeded', async () => (await getRun(catalog.pool, run.id)).status === 'succeeded', 30_000);
    await executor.tickOnce();
    assert.equal((await getRun(catalog.pool, run.id)).status, 'succeeded');
  });

  it('on GitHub Enterprise Server (400 for return_run_details) dispatches again and finds the run by its run-name', async () => {
    github.queueDispatch('legacy');
    job = 'none';
    const run = await trigger();
    await executor.tickOnce();
    const correlated = await executorOf(run.id);
    assert.equal(correlated.state, 'dispatched');
    const fake = github.runs.get(Number(correlated.workflowRunId))!;
    assert.equal(fake.displayTitle, `Backstop backup ${run.id}`);
    const dispatches = github.requests.filter((r) => r.path.endsWith('/dispatches')).slice(-2);
    assert.deepEqual(
      dispatches.map((r) => [r.status, (r.body as { return_run_details?: boolean }).return_run_details]),
      [
        [400, true],
        [204, undefined],
      ],
    );
    const kinds = (await listRunEvents(catalog.pool, run.id)).map((event) => event.kind);
    assert.deepEqual(kinds, ['created', 'dispatching', 'dispatched', 'correlated']);
  });

  for (const [behaviour, status, message] of [
    ['unauthorized', 401, /Bad credentials/],
    ['not-found', 404, /Not Found/],
    ['unprocessable', 422, /workflow_dispatch/],
  ] as const) {
    it(`a dispatch refused with ${status} fails the run with GitHub's message`, async () => {
      github.queueDispatch(behaviour);
      const run = await trigger();
      await executor.tickOnce();
      const failed = await getRun(catalog.pool, run.id);
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error?.code, 'DISPATCH_REFUSED');
      assert.match(failed.error!.message, new RegExp(`\\(${status}\\)`));
      assert.match(failed.error!.message, message);
    });
  }

  it('honours a rate limit (403 with retry-after) and then dispatches', async () => {
    github.queueDispatch('rate-limited');
    job = 'none';
    const run = await trigger();
    const started = performance.now();
    await executor.tickOnce();
    assert.ok(performance.now() - started >= 1000, 'waited for retry-after');
    assert.equal(typeof (await executorOf(run.id)).workflowRunId, 'number');
  });

  it("a job killed mid-dump: the run is timed_out by the reaper, and GitHub's later failure changes nothing", async () => {
    const lock = await holdTableLock(source.url, 'orders');
    try {
      const run = await trigger();
      await executor.tickOnce();
      await waitFor('dumping', async () => (await dumpSessions(run.id)) > 0, 30_000);
      jobs.at(-1)!.child.kill('SIGKILL');
      await waitFor(
        'timed_out',
        async () => {
          await reapRuns(catalog.pool);
          return (await getRun(catalog.pool, run.id)).status === 'timed_out';
        },
        15_000,
      );
      await executor.tickOnce();
      const ended = await getRun(catalog.pool, run.id);
      assert.equal(ended.status, 'timed_out');
      assert.equal(ended.error?.code, 'LEASE_EXPIRED');
    } finally {
      await lock.release();
    }
  });

  it('cancelled from Backstop: the runner stops, the run is cancelled, and the GitHub run is cancelled', async () => {
    const lock = await holdTableLock(source.url, 'orders');
    try {
      const run = await trigger();
      await executor.tickOnce();
      await waitFor('dumping', async () => (await dumpSessions(run.id)) > 0, 30_000);
      const cancel = await runCli(['cancel', run.id], env);
      assert.equal(cancel.code, 0, cancel.stderr);
      await executor.tickOnce();
      const sent = await executorOf(run.id);
      assert.equal(sent.cancelSent, true);
      await waitFor('cancelled', async () => (await getRun(catalog.pool, run.id)).status === 'cancelled', 15_000);
      const cancelRequests = github.requests.filter((r) => r.path.endsWith(`/runs/${sent.workflowRunId}/cancel`));
      assert.equal(cancelRequests.length, 1);
    } finally {
      await lock.release();
    }
  });

  it("a GitHub run that completes without the runner reporting is ended with GitHub's conclusion", async () => {
    job = 'none';
    const run = await trigger();
    await executor.tickOnce();
    const { workflowRunId } = await executorOf(run.id);
    github.complete(Number(workflowRunId), 'failure');
    await executor.tickOnce();
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.status, 'failed');
    assert.equal(ended.error?.code, 'EXECUTOR_ENDED');
    assert.match(ended.error!.message, /conclusion "failure"/);
    const kinds = (await listRunEvents(catalog.pool, run.id)).map((event) => event.kind);
    assert.deepEqual(kinds, ['created', 'dispatching', 'dispatched', 'executor_ended']);
  });

  it('a dispatched run nobody claims times out at its start deadline', async () => {
    job = 'none';
    const run = await trigger();
    await executor.tickOnce();
    await catalog.pool.query(`update backstop.runs set start_deadline_at = now() - interval '1 second' where id = $1`, [run.id]);
    await reapRuns(catalog.pool);
    const ended = await getRun(catalog.pool, run.id);
    assert.equal(ended.status, 'timed_out');
    assert.equal(ended.error?.code, 'START_DEADLINE_EXCEEDED');
    const late = await runCli(['run', run.id], env);
    assert.equal(late.code, 5);
    assert.match(late.stderr, /already finished as timed_out/);
  });

  it('workers never claim runs that belong to GitHub Actions', async () => {
    job = 'none';
    const run = await trigger();
    const worker = startCli(['worker', '--poll-interval', '0.1'], env);
    jobs.push(worker);
    await waitFor('worker up', () => worker.stderr().includes('worker started'));
    await waitFor('a few polls', () => worker.stderr().length > 0);
    assert.equal((await getRun(catalog.pool, run.id)).status, 'queued');
  });
});
