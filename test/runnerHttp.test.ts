import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import pino from 'pino';
import type { GithubExecutor } from '../src/executors/github/githubExecutor.ts';
import { createGithubRunnerToken, revokeGithubRunnerToken } from '../src/db/githubRunnerTokens.ts';
import { claimForDispatch, endRunFromExecutor } from '../src/db/executorRuns.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { reapRuns } from '../src/db/runLeases.ts';
import { createRun, getRun, requestCancel } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { issueRunnerToken } from '../src/db/tokens.ts';
import { startThreadedHeartbeat } from '../src/runner/heartbeatThread.ts';
import { httpRunner } from '../src/runner/httpRunnerCatalog.ts';
import { killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { startFakeGithub, startTestGithubExecutor, type FakeGithub, type FakeRun } from './support/fakeGithub.ts';
import { createSampleDatabase, createTestCatalog, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { closedPort, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The GitHub Actions job over HTTP, end to end: a run triggered through the API is dispatched
 * to a fake GitHub, whose "job" is a real `backstop run RUN_ID` process holding only what the
 * workflow template gives it (the API's URL, the repository's GitHub runner token, the source
 * database's URL; no catalog URL at all), against a real server, with real signals.
 */

const GITHUB_TOKEN = 'ghp_fake_token_for_runner_http_tests';
const WORKFLOW = { owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml' };
// Long enough that a loaded machine never expires a healthy lease, and that a server restart
// fits inside it; short enough that a killed job is reaped within seconds.
const serverLease = { BACKSTOP_LEASE_TTL: '8', BACKSTOP_HEARTBEAT_INTERVAL: '0.5' };
const TEST = { timeout: 120_000 };

/** Blocks this thread's event loop, as CPU-heavy work would. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

describe('`backstop run` / `backstop report` over HTTP with a GitHub runner token', { timeout: 900_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let jobHome: string;
  let api: TestServer;
  let operator: string;
  let github: FakeGithub;
  let executor: GithubExecutor;
  let repoToken: string;
  let otherRepoToken: string;
  let job: 'run' | 'none' = 'run';
  const jobs = new Map<string, CliProcess>();
  /** What each job's process had in its environment, read from /proc once it started. */
  const jobEnvironments = new Map<string, Record<string, string>>();

  /** Exactly what the workflow template gives the job: nothing inherited from this process. */
  const jobEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: jobHome,
    BACKSTOP_HOME: path.join(jobHome, 'backstop'),
    BACKSTOP_API_URL: api.url,
    BACKSTOP_RUNNER_TOKEN: repoToken,
    BACKSTOP_SOURCE_URL: source.url,
    GITHUB_REPOSITORY: 'acme/infra',
    ...extra,
  });
  const runJob = (args: string[], extra: Record<string, string> = {}) => runCli(args, jobEnv(extra), { inheritEnv: false });

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(300);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-http-store-'));
    jobHome = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-http-job-'));
    api = await startTestServer({ catalogUrl: catalog.url, env: serverLease });
    operator = api.tokens.operator;
    github = await startFakeGithub({ ...WORKFLOW, token: GITHUB_TOKEN });
    await createTarget(catalog.pool, {
      name: 'http-gh',
      databaseUrl: source.url,
      storeUrl: `file://${storeDir}`,
      executor: { kind: 'github', ...WORKFLOW, ref: 'main' },
    });
    repoToken = (await createGithubRunnerToken(catalog.pool, { name: 'infra', repository: 'acme/infra' })).token;
    otherRepoToken = (await createGithubRunnerToken(catalog.pool, { name: 'other', repository: 'acme/other' })).token;

    github.onDispatch((run: FakeRun) => {
      if (job === 'none') return;
      run.status = 'in_progress';
      const runId = run.inputs.run_id!;
      const cli = startCli(['run', runId], jobEnv({ GITHUB_RUN_ID: String(run.id) }), { inheritEnv: false });
      jobs.set(runId, cli);
      void cli.exited.then(({ code, signal }) => {
        if (run.status !== 'completed') github.complete(run.id, signal ? 'cancelled' : code === 0 ? 'success' : 'failure');
      });
    });
    executor = startTestGithubExecutor(catalog.pool, github, GITHUB_TOKEN);
  });

  afterEach(async () => {
    for (const row of await nonTerminal()) await requestCancel(catalog.pool, row.id).catch(() => {});
    await killAll(jobs.values());
    for (const row of await nonTerminal()) {
      await endRunFromExecutor(catalog.pool, { runId: row.id, status: 'cancelled', error: { code: 'CANCELLED', message: 'test cleanup' } });
    }
    job = 'run';
  });

  after(async () => {
    executor?.stop();
    await github?.close();
    await api?.close().catch(() => {});
    await catalog?.close();
    await source?.drop();
    for (const dir of [storeDir, jobHome]) if (dir) await fs.rm(dir, { recursive: true, force: true });
    assert.deepEqual(github.violations, [], "every request and response follows GitHub's OpenAPI description");
  });

  const nonTerminal = async () => (await catalog.pool.query<{ id: string }>(`select id from backstop.runs where status in ('queued', 'dispatched', 'running', 'cancelling')`)).rows;

  /** Triggers a backup through the API and lets the executor dispatch it; the fake GitHub starts the job. */
  async function dispatchRun(): Promise<{ runId: string; job: CliProcess | undefined }> {
    const created = await api.request('POST', '/api/v1/runs', { token: operator, body: { target: 'http-gh' } });
    assert.equal(created.status, 201, created.text);
    const runId = created.json.id as string;
    await executor.tickOnce();
    assert.equal((await getRun(catalog.pool, runId)).status === 'queued', false, 'the executor dispatched the run');
    const started = jobs.get(runId);
    if (started) {
      // Once the process runs backstop (after exec), its environment is the job's own.
      await waitFor('job exec', async () => (await fs.readFile(`/proc/${started.child.pid}/cmdline`, 'utf8')).includes('backstop.js'), 10_000);
      const environ = await fs.readFile(`/proc/${started.child.pid}/environ`, 'utf8');
      jobEnvironments.set(
        runId,
        Object.fromEntries(
          environ
            .split('\0')
            .filter(Boolean)
            .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
        ),
      );
    }
    return { runId, job: started };
  }

  const dumping = (runId: string) => waitFor('pg_dump running', async () => (await dumpSessions(runId)) > 0, 60_000);

  it('succeeds: the job holds only the API URL, the repository token and the source URL, and stores an artifact', TEST, async () => {
    const { runId, job: started } = await dispatchRun();
    assert.ok(started, 'the dispatch started a job');
    const environment = jobEnvironments.get(runId)!;
    assert.equal('BACKSTOP_DATABASE_URL' in environment, false, 'no catalog URL in the job');
    for (const [name, value] of Object.entries(environment)) {
      assert.ok(!value.includes(catalog.name), `${name} names the catalog database`);
    }
    assert.equal(environment.BACKSTOP_RUNNER_TOKEN, repoToken);

    const { code } = await started.exited;
    assert.equal(code, 0, started.stderr());
    const run = await getRun(catalog.pool, runId);
    assert.equal(run.status, 'succeeded');
    assert.ok(run.artifact && run.artifact.files.length > 0 && run.artifact.manifest.size > 0);
    await fs.access(path.join(storeDir, run.artifact.prefix, 'manifest.json'));
    assert.match(run.claimedBy ?? '', /^github:acme\/infra#\d+$/);
    const kinds = (await listRunEvents(catalog.pool, runId)).map((event) => event.kind);
    assert.deepEqual(kinds.slice(0, 4), ['created', 'dispatching', 'dispatched', 'claimed']);
    assert.ok(kinds.includes('dump_started'), 'events went through the API');
    assert.equal(kinds.at(-1), 'finished');
    // The claim exchanged the repository's token for the run's own.
    assert.equal((await catalog.pool.query('select 1 from backstop.runner_tokens where run_id = $1', [runId])).rowCount, 1);
    // The job never opened a catalog of its own, and no token reached a log.
    await assert.rejects(fs.access(path.join(jobHome, 'backstop')), /ENOENT/);
    for (const text of [started.stderr(), started.stdout(), ...api.logs]) assert.doesNotMatch(text, /bs[grt]_[A-Za-z0-9_-]{20}/);
    await executor.tickOnce();
    assert.equal((await getRun(catalog.pool, runId)).status, 'succeeded');
  });

  it('the job is killed (SIGKILL) mid-dump: the reaper times the run out when the lease expires', TEST, async () => {
    const lock = await holdTableLock(source.url, 'orders');
    try {
      const { runId, job: started } = await dispatchRun();
      await dumping(runId);
      started!.child.kill('SIGKILL');
      await waitFor('timed_out', async () => (await getRun(catalog.pool, runId)).status === 'timed_out', 40_000);
      await executor.tickOnce();
      const run = await getRun(catalog.pool, runId);
      assert.equal(run.status, 'timed_out');
      assert.equal(run.error?.code, 'LEASE_EXPIRED');
    } finally {
      await lock.release();
    }
  });

  it('SIGINT (GitHub cancelling the job): cancelled is recorded over HTTP and the job exits well within 7.5 s', TEST, async () => {
    const lock = await holdTableLock(source.url, 'orders');
    try {
      const { runId, job: started } = await dispatchRun();
      await dumping(runId);
      const sent = performance.now();
      started!.child.kill('SIGINT');
      const { code } = await started!.exited;
      const elapsedMs = performance.now() - sent;
      assert.ok(elapsedMs < 7500, `took ${Math.round(elapsedMs)} ms`);
      assert.equal(code, 130, started!.stderr());
      const run = await getRun(catalog.pool, runId);
      assert.equal(run.status, 'cancelled');
      assert.equal(run.error?.code, 'CANCELLED');
      assert.match(run.error!.message, /SIGINT/);
      assert.equal(await dumpSessions(runId), 0, 'pg_dump stopped');
      process.stderr.write(`# SIGINT → cancelled recorded and job exited in ${Math.round(elapsedMs)} ms\n`);
    } finally {
      await lock.release();
    }
  });

  it('a cancel from the API reaches the job through its heartbeat answer', TEST, async () => {
    const lock = await holdTableLock(source.url, 'orders');
    try {
      const { runId, job: started } = await dispatchRun();
      await dumping(runId);
      const cancel = await api.request('POST', `/api/v1/runs/${runId}/cancel`, { token: operator });
      assert.equal(cancel.status, 200, cancel.text);
      assert.equal(cancel.json.status, 'cancelling');
      const { code } = await started!.exited;
      assert.equal(code, 130, started!.stderr());
      const run = await getRun(catalog.pool, runId);
      assert.equal(run.status, 'cancelled');
      assert.match(run.error!.message, /Cancelled on request/);
    } finally {
      await lock.release();
    }
  });

  it("`backstop report` (the always() step) ends a run whose job died without finalizing, with the job's status", TEST, async () => {
    const lock = await holdTableLock(source.url, 'orders');
    try {
      const { runId, job: started } = await dispatchRun();
      await dumping(runId);
      started!.child.kill('SIGKILL');
      await started!.exited;
      // The job died a moment ago and its lease still holds: made to hold for as long as the
      // report step takes to start on a loaded machine, so that the reaper cannot end it first.
      const { rowCount } = await catalog.pool.query(
        "update backstop.runs set lease_expires_at = now() + interval '5 minutes' where id = $1 and status = 'running' and lease_expires_at > now()",
        [runId],
      );
      assert.equal(rowCount, 1, 'the lease still holds');
      const report = await runJob(['report', runId, '--job-status', 'failure']);
      assert.equal(report.code, 0, report.stderr);
      assert.match(report.stdout, /^Ended: /);
      const run = await getRun(catalog.pool, runId);
      assert.equal(run.status, 'failed');
      assert.equal(run.error?.code, 'EXECUTOR_ENDED');
      assert.match(run.error!.message, /job status: failure/);
      const again = await runJob(['report', runId, '--job-status', 'success']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /^Already ended: /);
      assert.deepEqual(await getRun(catalog.pool, runId), run);
    } finally {
      await lock.release();
    }

    // The run step never ran at all (say the client install failed), and the job was cancelled.
    job = 'none';
    const { runId } = await dispatchRun();
    assert.equal((await getRun(catalog.pool, runId)).status, 'dispatched');
    const report = await runJob(['report', runId, '--job-status', 'cancelled']);
    assert.equal(report.code, 0, report.stderr);
    const run = await getRun(catalog.pool, runId);
    assert.equal(run.status, 'cancelled');
    assert.equal(run.error?.code, 'EXECUTOR_ENDED');
  });

  it("the database URL comes from the job's environment only: BACKSTOP_SOURCE_URL_<TARGET>, else BACKSTOP_SOURCE_URL, else a failed run that says so", TEST, async () => {
    job = 'none';
    const missing = await dispatchRun();
    const failed = await runJob(['run', missing.runId], { BACKSTOP_SOURCE_URL: '' });
    assert.equal(failed.code, 2, failed.stderr);
    const run = await getRun(catalog.pool, missing.runId);
    assert.equal(run.status, 'failed');
    assert.equal(run.error?.code, 'CONFIG_INVALID');
    assert.match(run.error!.message, /set BACKSTOP_SOURCE_URL_HTTP_GH or BACKSTOP_SOURCE_URL/);

    const named = await dispatchRun();
    const ok = await runJob(['run', named.runId, '--json'], { BACKSTOP_SOURCE_URL: 'postgres://nobody@127.0.0.1:1/wrong', BACKSTOP_SOURCE_URL_HTTP_GH: source.url });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).status, 'succeeded');
  });

  it('a wrong, revoked or misdirected token, a stale or unknown run id, or an unreachable API: refused, nothing changed', TEST, async () => {
    const [finished] = (await catalog.pool.query<{ id: string }>(`select id from backstop.runs where status = 'succeeded' limit 1`)).rows;
    assert.ok(finished, 'a succeeded run from the first test');
    job = 'none';
    const { runId: dispatched } = await dispatchRun();
    const queued = (await api.request('POST', '/api/v1/runs', { token: operator, body: { target: 'http-gh' } })).json.id as string;
    const perRun = await api.request('POST', `/api/v1/runs/${queued}/runner-token`, { token: operator });
    assert.equal(perRun.status, 201, perRun.text);
    const revoked = await createGithubRunnerToken(catalog.pool, { name: 'revoked', repository: 'acme/infra' });
    await revokeGithubRunnerToken(catalog.pool, revoked.id);

    const snapshot = async () =>
      (
        await catalog.pool.query(
          `select r.id, r.status, r.attempt, r.lease_id, r.claimed_by, r.finished_at,
             (select count(*) from backstop.run_events e where e.run_id = r.id) as events,
             (select token_hash from backstop.runner_tokens t where t.run_id = r.id) as runner_token
           from backstop.runs r order by r.id`,
        )
      ).rows;
    const before = await snapshot();
    const cases: Array<[string, string[], Record<string, string>, number, RegExp]> = [
      ['an unknown token', ['run', dispatched], { BACKSTOP_RUNNER_TOKEN: `bsg_${'x'.repeat(43)}` }, 2, /refused the runner token: Unknown or revoked GitHub runner token/],
      ['a revoked token', ['run', dispatched], { BACKSTOP_RUNNER_TOKEN: revoked.token }, 2, /refused the runner token/],
      ["another run's runner token", ['run', dispatched], { BACKSTOP_RUNNER_TOKEN: perRun.json.token }, 2, new RegExp(`only lets its runner .* run ${queued}`)],
      ["another repository's token", ['run', dispatched], { BACKSTOP_RUNNER_TOKEN: otherRepoToken }, 2, /was not dispatched to acme\/other/],
      ["a report with another repository's token", ['report', dispatched, '--job-status', 'failure'], { BACKSTOP_RUNNER_TOKEN: otherRepoToken }, 2, /was not dispatched to acme\/other/],
      ['a finished run', ['run', finished.id], {}, 5, /already finished as succeeded/],
      ['a run not dispatched yet', ['run', queued], {}, 2, /Run [0-9a-f-]{36} was not dispatched to acme\/infra/],
      ['an unknown run id', ['run', crypto.randomUUID()], {}, 4, /No run with id/],
      ['a run id that is no UUID', ['run', 'run-42'], {}, 4, /not a run id/],
      [
        'an unreachable API',
        ['run', dispatched],
        { BACKSTOP_API_URL: `http://127.0.0.1:${await closedPort()}` },
        7,
        /Cannot reach the Backstop API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)\. Check BACKSTOP_API_URL/,
      ],
      ['an API URL that is not one', ['run', dispatched], { BACKSTOP_API_URL: 'backstop.example.com' }, 2, /is not an http:\/\/ or https:\/\/ URL/],
      ['a secret that was never set', ['run', dispatched], { BACKSTOP_RUNNER_TOKEN: '' }, 2, /BACKSTOP_RUNNER_TOKEN \(or --token\) is empty/],
    ];
    for (const [what, args, extra, exitCode, message] of cases) {
      const result = await runJob(args, { BACKSTOP_LOG_LEVEL: 'error', ...extra });
      assert.equal(result.code, exitCode, `${what}: ${result.stderr}`);
      assert.match(result.stderr, message, what);
      assert.equal(result.stderr.trim().split('\n').length, 1, `${what}: one line on stderr`);
    }
    assert.deepEqual(await snapshot(), before);
    await assert.rejects(fs.access(path.join(jobHome, 'backstop')), /ENOENT/, 'no embedded catalog was started');
    await requestCancel(catalog.pool, queued);
    await requestCancel(catalog.pool, dispatched);
  });

  it('over the API, a GitHub runner token claims a dispatched run (getting its runner token, never a database URL) and reports; nothing else', TEST, async () => {
    const target = await createTarget(catalog.pool, {
      name: 'api-gh',
      databaseUrl: 'postgres://backup:pw-SECRET-9d1e@db.example.com:5432/app',
      storeUrl: 'file:///var/backups/api-gh',
      options: { compression: 'zstd:3', profile: 'supabase', withStorage: true },
      exclusive: false,
      executor: { kind: 'github', ...WORKFLOW, ref: 'main' },
    });
    const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
    assert.deepEqual(
      (await claimForDispatch(catalog.pool, { startDeadlineMs: 60_000, limit: 10, dispatcher: 'test' })).map((d) => d.run.id),
      [run.id],
    );
    const as = (token: string, method: string, url: string, body?: unknown) => api.request(method, url, { token, body });

    for (const [method, url] of [
      ['GET', '/api/v1/runs'],
      ['GET', `/api/v1/runs/${run.id}`],
      ['GET', '/api/v1/targets'],
      ['POST', `/api/v1/runs/${run.id}/runner-token`],
      ['POST', `/api/v1/runs/${run.id}/cancel`],
    ] as const) {
      assert.equal((await as(repoToken, method, url)).status, 403, `${method} ${url}`);
    }
    const leaseless = { leaseId: crypto.randomUUID() };
    assert.equal((await as(repoToken, 'POST', `/api/v1/runs/${run.id}/heartbeat`, leaseless)).status, 403, 'heartbeats need the run token');

    const claim = await as(repoToken, 'POST', `/api/v1/runs/${run.id}/claim`, { claimedBy: 'github:acme/infra#1' });
    assert.equal(claim.status, 200, claim.text);
    assert.match(claim.json.runnerToken, /^bsr_/);
    assert.deepEqual(claim.json.target, {
      id: target.id,
      name: 'api-gh',
      storeUrl: 'file:///var/backups/api-gh',
      options: { compression: 'zstd:3', profile: 'supabase', withStorage: true },
      continuous: null,
    });
    assert.doesNotMatch(claim.text, /pw-SECRET|db\.example\.com/);
    assert.equal(claim.json.run.status, 'running');
    const again = await as(repoToken, 'POST', `/api/v1/runs/${run.id}/claim`, {});
    assert.equal(again.status, 409, again.text);
    assert.equal(again.json.error.code, 'RUN_NOT_CLAIMABLE');

    const runToken = claim.json.runnerToken as string;
    const leaseId = claim.json.leaseId as string;
    assert.equal((await as(runToken, 'POST', `/api/v1/runs/${run.id}/heartbeat`, { leaseId })).status, 200);
    const release = await as(runToken, 'POST', `/api/v1/runs/${run.id}/release`, { leaseId, reason: 'runner shutting down' });
    assert.equal(release.status, 200, release.text);
    assert.deepEqual(release.json, { status: 'queued' });
    assert.equal((await getRun(catalog.pool, run.id)).status, 'queued');
    const twice = await as(runToken, 'POST', `/api/v1/runs/${run.id}/release`, { leaseId, reason: 'again' });
    assert.equal(twice.status, 409);
    assert.equal(twice.json.error.code, 'LEASE_LOST');
    const requeued = await as(repoToken, 'POST', `/api/v1/runs/${run.id}/claim`, {});
    assert.equal(requeued.status, 409);
    assert.match(requeued.json.error.message, /queued, not dispatched/);

    const report = await as(repoToken, 'POST', `/api/v1/runs/${run.id}/report`, { jobStatus: 'failure' });
    assert.equal(report.status, 200, report.text);
    assert.equal(report.json.ended, true);
    assert.equal(report.json.run.status, 'failed');
    assert.equal((await as(repoToken, 'POST', `/api/v1/runs/${run.id}/report`, { jobStatus: 'failure' })).json.ended, false);
    assert.equal((await as(repoToken, 'POST', `/api/v1/runs/${run.id}/report`, { jobStatus: 'maybe' })).status, 400);

    // Drills restore next to the catalog: never claimed over HTTP, whoever asks.
    const [backup] = (await catalog.pool.query<{ id: string }>(`select id from backstop.runs where status = 'succeeded' and kind = 'backup' limit 1`)).rows;
    const drill = await api.request('POST', `/api/v1/runs/${backup!.id}/verify`, { token: operator });
    assert.equal(drill.status, 201, drill.text);
    const drillToken = (await api.request('POST', `/api/v1/runs/${drill.json.id}/runner-token`, { token: operator })).json.token as string;
    const refused = await as(drillToken, 'POST', `/api/v1/runs/${drill.json.id}/claim`, {});
    assert.equal(refused.status, 409);
    assert.match(refused.json.error.message, /verification drill/);
    assert.equal((await getRun(catalog.pool, drill.json.id)).status, 'queued');
    await requestCancel(catalog.pool, drill.json.id);

    const doc = await api.request('GET', '/api/openapi.json', { token: operator });
    for (const route of ['/api/v1/runs/{id}/release', '/api/v1/runs/{id}/report']) assert.ok(doc.json.paths[route], `${route} documented`);
    assert.ok(doc.json.components.schemas.RunnerTarget);
    assert.doesNotMatch(JSON.stringify(doc.json.components.schemas.RunnerTarget), /databaseUrl/);
  });

  it('`backstop token create --github OWNER/REPO` prints a token for that repository; list and revoke know it', TEST, async () => {
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_LOG_LEVEL: 'error' };
    const created = await runCli(['token', 'create', '--name', 'ci of infra', '--github', 'acme/infra', '--json'], env);
    assert.equal(created.code, 0, created.stderr);
    const record = JSON.parse(created.stdout);
    assert.match(record.token, /^bsg_[A-Za-z0-9_-]{43}$/);
    assert.equal(record.repository, 'acme/infra');
    const listed = await runCli(['token', 'list'], env);
    assert.match(listed.stdout, new RegExp(`${record.id} +ci of infra +github-runner acme/infra`));
    assert.ok(!listed.stdout.includes(record.token));
    assert.equal((await runCli(['token', 'revoke', record.id], env)).code, 0);
    const refused = await runJob(['run', crypto.randomUUID()], { BACKSTOP_RUNNER_TOKEN: record.token, BACKSTOP_LOG_LEVEL: 'error' });
    assert.equal(refused.code, 2, refused.stderr);
    for (const [args, message] of [
      [['--github', 'not a repo'], /OWNER\/REPO/],
      [['--github', 'acme/infra', '--role', 'admin'], /either --role ROLE .* or --github/],
      [[], /either --role ROLE .* or --github/],
    ] as const) {
      const bad = await runCli(['token', 'create', '--name', 'x', ...args], env);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, message);
    }
  });

  it('HTTP heartbeats run in their own thread: a main thread blocked for three leases keeps its run', { timeout: 240_000 }, async () => {
    // The server in its own process: this test blocks its own thread, as CPU-heavy work would.
    const port = await closedPort();
    const serverEnv = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_LEASE_TTL: '2', BACKSTOP_HEARTBEAT_INTERVAL: '0.25', BACKSTOP_REAPER_INTERVAL: '0.5', BACKSTOP_LOG_LEVEL: 'error' };
    const server = startCli(['server', '--port', String(port), '--no-worker'], serverEnv);
    const apiUrl = `http://127.0.0.1:${port}`;
    let heartbeat: { stop(): void } | undefined;
    try {
      await waitFor('server up', async () => (await fetch(`${apiUrl}/healthz`)).ok, 60_000);
      const target = await createTarget(catalog.pool, { name: 'thread-http', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
      const queued = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
      const runner = httpRunner({ apiUrl, token: await issueRunnerToken(catalog.pool, queued.id), sourceUrl: () => source.url, log: pino({ level: 'silent' }) });
      const { run, leaseTtlMs, heartbeatIntervalMs } = await runner.claim(queued.id, 'thread test');
      assert.equal(leaseTtlMs, 2000, "the server's lease, from the claim");
      const channel = runner.catalog.heartbeatChannel;
      assert.equal(channel?.kind, 'http');
      // The thread loads its modules and connects first, which on a loaded machine outlasts a
      // 2 s lease: the claim's lease is made to hold until its first renewal (each renewal sets
      // it to 2 s from then), so that the reaper cannot end the run before the thread is up.
      await catalog.pool.query("update backstop.runs set lease_expires_at = now() + interval '5 minutes' where id = $1", [run.id]);
      const lost: string[] = [];
      heartbeat = startThreadedHeartbeat({
        channel: channel!,
        // This thread's own renewals never complete: every renewal seen below is the thread's.
        renewLease: () => new Promise(() => {}),
        runId: run.id,
        leaseId: run.leaseId,
        leaseTtlMs,
        intervalMs: heartbeatIntervalMs,
        log: pino({ level: 'silent' }),
        progress: () => null,
        onLeaseLost: (reason) => lost.push(reason),
        onCancelRequested: () => {},
      });
      const beatAt = async () => (await getRun(catalog.pool, run.id)).heartbeatAt;
      const first = await beatAt();
      await waitFor('the thread renewing over HTTP', async () => (await beatAt()) !== first, 90_000);
      blockFor(3 * leaseTtlMs);
      assert.deepEqual(lost, []);
      assert.deepEqual(await reapRuns(catalog.pool), [], 'nothing to reap: the thread kept the lease');
      assert.equal((await getRun(catalog.pool, run.id)).status, 'running');
      heartbeat.stop();
      const finished = await runner.catalog.finalize({ runId: run.id, leaseId: run.leaseId, outcome: 'cancelled', error: { code: 'CANCELLED', message: 'test over' } });
      assert.equal(finished.status, 'cancelled');
    } finally {
      heartbeat?.stop();
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('the API server restarts during the run: heartbeats fail, are retried, and the run still succeeds', TEST, async () => {
    // A lease long enough to outlast a restart on a loaded machine (the runner learns it from the claim).
    const restartLease = { ...serverLease, BACKSTOP_LEASE_TTL: '30', BACKSTOP_HEARTBEAT_INTERVAL: '1' };
    const port = Number(new URL(api.url).port);
    await api.close();
    api = await startTestServer({ catalogUrl: catalog.url, env: restartLease, port, tokens: false });
    const lock = await holdTableLock(source.url, 'orders');
    let released = false;
    try {
      const { runId, job: started } = await dispatchRun();
      await dumping(runId);
      await api.close();
      await waitFor('a failed heartbeat', () => /heartbeat failed; retrying/.test(started!.stderr()), 20_000);
      api = await startTestServer({ catalogUrl: catalog.url, env: restartLease, port, tokens: false });
      await lock.release();
      released = true;
      const { code } = await started!.exited;
      assert.equal(code, 0, started!.stderr());
      const run = await getRun(catalog.pool, runId);
      assert.equal(run.status, 'succeeded');
      assert.equal(run.attempt, 1);
      assert.ok(run.artifact);
    } finally {
      if (!released) await lock.release();
    }
  });
});
