import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { bundle, bundles } from '../scripts/bundle.ts';
import type { GithubExecutor } from '../src/executors/github/githubExecutor.ts';
import { createGithubRunnerToken } from '../src/db/githubRunnerTokens.ts';
import { endRunFromExecutor } from '../src/db/executorRuns.ts';
import { getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { repoRoot } from './support/cli.ts';
import { startFakeGithub, startTestGithubExecutor, type FakeGithub, type FakeRun } from './support/fakeGithub.ts';
import { createSampleDatabase, createTestCatalog, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The GitHub Action as GitHub's runner runs it: `node dist/action/index.cjs` — the committed
 * bundle, with this repository's node_modules out of reach — its inputs as INPUT_* variables
 * and nothing else of ours in its environment, a GITHUB_OUTPUT file for its outputs, against a
 * real server, a real catalog and a real source database, dispatched through a fake GitHub.
 */

const GITHUB_TOKEN = 'ghp_fake_token_for_action_tests';
const WORKFLOW = { owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml' };
const ACTION = path.join(repoRoot, 'dist', 'action', 'index.cjs');
const TEST = { timeout: 120_000 };

interface ActionProcess {
  child: ReturnType<typeof spawn>;
  output: string;
  exited: Promise<number | null>;
  log(): string;
  outputs(): Promise<Record<string, string>>;
}

describe('the GitHub Action (action.yml → dist/action/index.cjs)', { timeout: 600_000 }, () => {
  let workDir: string;
  let catalog: TestCatalog;
  let source: TestDatabase;
  let api: TestServer;
  let github: FakeGithub;
  let executor: GithubExecutor;
  let repoToken: string;
  const started = new Map<string, ActionProcess>();

  /**
   * One step of the job: the runner's own Node 24 runs the bundle from a copy of the action's
   * repository that holds no node_modules, in a work folder of its own.
   */
  function runStep(inputs: Record<string, string>, extra: Record<string, string> = {}): ActionProcess {
    const outputFile = path.join(workDir, `output-${Math.random().toString(36).slice(2)}`);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: workDir,
      GITHUB_ACTIONS: 'true',
      GITHUB_REPOSITORY: 'acme/infra',
      GITHUB_OUTPUT: outputFile,
      ...Object.fromEntries(Object.entries(inputs).map(([name, value]) => [`INPUT_${name.toUpperCase()}`, value])),
      ...extra,
    };
    const child = spawn(process.execPath, [path.join(workDir, 'action', 'dist', 'action', 'index.cjs')], { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    return {
      child,
      output: outputFile,
      exited,
      log: () => log,
      outputs: async () =>
        Object.fromEntries(
          (await fs.readFile(outputFile, 'utf8').catch(() => ''))
            .split('\n')
            .filter(Boolean)
            .map((line) => line.split(/=(.*)/s).slice(0, 2)),
        ),
    };
  }

  const runInputs = (runId: string) => ({
    'run-id': runId,
    'api-url': api.url,
    'runner-token': repoToken,
    'source-url': source.url,
  });

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-action-'));
    // What the runner downloads for `uses: OWNER/REPO@SHA`: the repository's files at that
    // commit — here action.yml and the committed bundle, and no node_modules anywhere above.
    await fs.mkdir(path.join(workDir, 'action', 'dist', 'action'), { recursive: true });
    await fs.copyFile(ACTION, path.join(workDir, 'action', 'dist', 'action', 'index.cjs'));
    await fs.copyFile(path.join(repoRoot, 'action.yml'), path.join(workDir, 'action', 'action.yml'));
    catalog = await createTestCatalog();
    source = await createSampleDatabase(300);
    // Long enough that the always() step, a fresh process on a loaded machine, reports before
    // a killed run step's lease runs out; short enough that the reaper's timeout comes soon.
    api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_LEASE_TTL: '12', BACKSTOP_HEARTBEAT_INTERVAL: '0.5' } });
    github = await startFakeGithub({ ...WORKFLOW, token: GITHUB_TOKEN });
    await createTarget(catalog.pool, {
      name: 'action',
      databaseUrl: source.url,
      storeUrl: `file://${path.join(workDir, 'store')}`,
      executor: { kind: 'github', ...WORKFLOW, ref: 'main' },
    });
    repoToken = (await createGithubRunnerToken(catalog.pool, { name: 'infra', repository: 'acme/infra' })).token;
    github.onDispatch((run: FakeRun) => {
      run.status = 'in_progress';
      started.set(run.inputs.run_id!, runStep(runInputs(run.inputs.run_id!), { GITHUB_RUN_ID: String(run.id) }));
    });
    executor = startTestGithubExecutor(catalog.pool, github, GITHUB_TOKEN);
  });

  afterEach(async () => {
    for (const step of started.values()) {
      if (step.child.exitCode === null && step.child.signalCode === null) step.child.kill('SIGKILL');
      await step.exited;
    }
    const open = await catalog.pool.query<{ id: string }>(`select id from backstop.runs where status in ('queued', 'dispatched', 'running', 'cancelling')`);
    for (const row of open.rows) await endRunFromExecutor(catalog.pool, { runId: row.id, status: 'cancelled', error: { code: 'CANCELLED', message: 'test cleanup' } });
  });

  after(async () => {
    executor?.stop();
    await github?.close();
    await api?.close().catch(() => {});
    await catalog?.close();
    await source?.drop();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
    assert.deepEqual(github.violations, [], "every request and response follows GitHub's OpenAPI description");
  });

  async function dispatch(): Promise<{ runId: string; step: ActionProcess }> {
    const created = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: 'action' } });
    assert.equal(created.status, 201, created.text);
    const runId = created.json.id as string;
    await executor.tickOnce();
    const step = started.get(runId);
    assert.ok(step, 'the dispatch started the job');
    return { runId, step };
  }

  it('the committed bundles are what `npm run bundle` builds from these sources', async () => {
    const fresh = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-bundle-'));
    try {
      await bundle(fresh);
      for (const { output } of bundles) {
        const committed = await fs.readFile(path.join(repoRoot, output));
        const built = await fs.readFile(path.join(fresh, output));
        assert.ok(committed.equals(built), `${output} is stale: run \`npm run bundle\` and commit the result`);
      }
    } finally {
      await fs.rm(fresh, { recursive: true, force: true });
    }
  });

  it('action.yml runs the bundle on node24 and declares every input the template passes', async () => {
    const action = parseYaml(await fs.readFile(path.join(repoRoot, 'action.yml'), 'utf8'));
    assert.deepEqual(action.runs, { using: 'node24', main: 'dist/action/index.cjs' });
    const template = parseYaml(await fs.readFile(path.join(repoRoot, 'templates', 'github', 'backup.yml'), 'utf8'));
    const steps = (template.jobs.backup.steps as Array<{ uses?: string; with?: Record<string, string> }>).filter((step) => step.uses);
    assert.equal(steps.length, 2, 'the run step and the always() step use the action');
    for (const step of steps) {
      for (const input of Object.keys(step.with ?? {})) assert.ok(input in action.inputs, `action.yml declares the input ${input}`);
      for (const [input, spec] of Object.entries(action.inputs as Record<string, { required: boolean }>)) {
        if (spec.required) assert.ok(input in (step.with ?? {}), `the template passes the required input ${input}`);
      }
    }
  });

  it('runs a dispatched run to succeeded, sets its outputs, and the always() step leaves it alone', TEST, async () => {
    const { runId, step } = await dispatch();
    assert.equal(await step.exited, 0, step.log());
    const run = await getRun(catalog.pool, runId);
    assert.equal(run.status, 'succeeded');
    assert.ok(run.artifact && run.artifact.files.length > 0);
    assert.match(run.claimedBy ?? '', /^github:acme\/infra#\d+$/);
    assert.deepEqual(await step.outputs(), { status: 'succeeded', 'error-code': '' });
    // Values that may not come from secrets are masked before anything else is printed.
    assert.ok(step.log().startsWith(`::add-mask::${repoToken}\n::add-mask::${source.url}\n`), step.log());

    const report = runStep({ 'run-id': runId, 'api-url': api.url, 'runner-token': repoToken, 'job-status': 'success' });
    assert.equal(await report.exited, 0, report.log());
    assert.match(report.log(), /Already ended/);
    assert.deepEqual(await report.outputs(), { status: 'succeeded', 'error-code': '' });
    assert.deepEqual(await getRun(catalog.pool, runId), run);
  });

  it('the job is killed (SIGKILL) mid-dump: the run ends timed_out when its lease expires', TEST, async () => {
    const lock = await holdTableLock(source.url, 'orders');
    try {
      const { runId, step } = await dispatch();
      await waitFor('pg_dump running', async () => (await dumpSessions(runId)) > 0, 60_000);
      step.child.kill('SIGKILL');
      await waitFor('timed_out', async () => (await getRun(catalog.pool, runId)).status === 'timed_out', 40_000);
      assert.equal((await getRun(catalog.pool, runId)).error?.code, 'LEASE_EXPIRED');
    } finally {
      await lock.release();
    }
  });

  it("the always() step ends a run the run step left unfinished with the job's status", TEST, async () => {
    const lock = await holdTableLock(source.url, 'orders');
    try {
      const { runId, step } = await dispatch();
      await waitFor('pg_dump running', async () => (await dumpSessions(runId)) > 0, 60_000);
      // A runner that crashed without a word; its lease has not expired yet.
      step.child.kill('SIGKILL');
      await step.exited;
      const report = runStep({ 'run-id': runId, 'api-url': api.url, 'runner-token': repoToken, 'job-status': 'failure' });
      assert.equal(await report.exited, 0, report.log());
      const run = await getRun(catalog.pool, runId);
      assert.equal(run.status, 'failed');
      assert.equal(run.error?.code, 'EXECUTOR_ENDED');
      assert.deepEqual(await report.outputs(), { status: 'failed', 'error-code': 'EXECUTOR_ENDED' });
    } finally {
      await lock.release();
    }
  });

  it('inputs a workflow forgot are named, all at once, as a GitHub error annotation (exit 2)', async () => {
    const step = runStep({ 'run-id': '', 'api-url': api.url, 'job-status': 'maybe' });
    assert.equal(await step.exited, 2);
    assert.match(step.log(), /^::error title=Backstop::The Backstop action's inputs: `run-id` is empty.*`runner-token` is empty.*`job-status` must be success, failure or cancelled/);
    assert.doesNotMatch(step.log(), /`api-url` is empty/);
  });
});
