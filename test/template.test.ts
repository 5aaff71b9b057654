import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { claimRunById } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { runCli } from './support/cli.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import './support/jsonImports.ts';

const { NoOperationTraceWriter, parseWorkflow, convertWorkflowTemplate } = await import('@actions/workflow-parser');

const TEMPLATE = new URL('../templates/github/backup.yml', import.meta.url);

describe('GitHub Actions workflow template', () => {
  it("passes GitHub's own workflow parser and has every safeguard", async () => {
    const content = await fs.readFile(TEMPLATE, 'utf8');
    const parsed = parseWorkflow({ name: 'backstop-backup.yml', content }, new NoOperationTraceWriter());
    assert.deepEqual(
      parsed.context.errors.getErrors().map((error) => error.message),
      [],
    );
    const template = await convertWorkflowTemplate(parsed.context, parsed.value!);
    assert.deepEqual(template.errors ?? [], []);

    const workflow = parseYaml(content);
    const inputs = workflow.on.workflow_dispatch.inputs;
    assert.equal(inputs.run_id.required, true);
    assert.match(workflow['run-name'], /\$\{\{ inputs\.run_id \}\}/);
    assert.match(workflow.concurrency.group, /inputs\.target/);
    const job = workflow.jobs.backup;
    const hardDeadlineMinutes = 6 * 60;
    assert.ok(job['timeout-minutes'] < hardDeadlineMinutes, 'job timeout below the run hard deadline');
    const steps = job.steps as Array<Record<string, unknown>>;
    const runStep = steps.find((step) => step.id === 'backup')!;
    assert.match(String(runStep.run), /backstop@\$\{BACKSTOP_VERSION\}" run "\$RUN_ID"/);
    assert.ok(Number(runStep['timeout-minutes']) < job['timeout-minutes']);
    const last = steps.at(-1)!;
    assert.equal(last.if, 'always()');
    assert.match(String(last.run), /report "\$RUN_ID" --job-status "\$\{\{ job\.status \}\}"/);
    assert.ok(steps.some((step) => /postgresql-client-\$\{\{ inputs\.pg_major \}\}/.test(String(step.run))));

    // Over HTTP with the repository's runner token: the job never gets the catalog's URL, the
    // credentials reach only the steps that use them, and no input carries a secret (inputs
    // are public on the run's page and in the event payload).
    assert.doesNotMatch(content.replace(/^#.*$/gm, ''), /BACKSTOP_DATABASE_URL/);
    assert.equal(job.env.BACKSTOP_RUNNER_TOKEN, undefined, 'the token is not given to every step');
    for (const step of [runStep, last]) {
      const env = step.env as Record<string, string>;
      assert.equal(env.BACKSTOP_API_URL, '${{ secrets.BACKSTOP_API_URL }}');
      assert.equal(env.BACKSTOP_RUNNER_TOKEN, '${{ secrets.BACKSTOP_RUNNER_TOKEN }}');
    }
    assert.equal((runStep.env as Record<string, string>).BACKSTOP_SOURCE_URL, '${{ secrets.BACKSTOP_SOURCE_URL }}');
    assert.deepEqual(Object.keys(inputs).sort(), ['pg_major', 'run_id', 'target']);
    assert.doesNotMatch(JSON.stringify(workflow.on), /secret|token/i);
    assert.match(content, /^# Why the token lives in the repository's secrets, not in the dispatch: workflow_dispatch\n# inputs are public/m);
  });

  it('`backstop init github` writes it into a repository and will not overwrite without --force', async () => {
    const repo = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-repo-'));
    try {
      const first = await runCli(['init', 'github', '--dir', repo], {});
      assert.equal(first.code, 0, first.stderr);
      const written = await fs.readFile(path.join(repo, '.github/workflows/backstop-backup.yml'), 'utf8');
      assert.match(written, /BACKSTOP_VERSION: '\d+\.\d+\.\d+'/);
      for (const step of ['backstop token create --name github-REPO --github OWNER/REPO', 'BACKSTOP_API_URL', 'BACKSTOP_RUNNER_TOKEN', 'BACKSTOP_SOURCE_URL']) {
        assert.ok(first.stdout.includes(step), `init github's instructions mention ${step}`);
      }
      assert.doesNotMatch(first.stdout, /BACKSTOP_DATABASE_URL/);
      const again = await runCli(['init', 'github', '--dir', repo], {});
      assert.equal(again.code, 2);
      assert.match(again.stderr, /--force/);
      assert.equal((await runCli(['init', 'github', '--dir', repo, '--force'], {})).code, 0);
    } finally {
      await fs.rm(repo, { recursive: true, force: true });
    }
  });
});

describe('`backstop report` (the always() step)', () => {
  let catalog: TestCatalog;
  before(async () => {
    catalog = await createTestCatalog();
  });
  after(async () => {
    await catalog.close();
  });

  it("ends a run the run step left unfinished with the job's status, and leaves a finished run alone", async () => {
    const target = await createTarget(catalog.pool, { name: 'reported', databaseUrl: 'postgres://x@127.0.0.1:1/x', storeUrl: 'file:///tmp/x', exclusive: false });
    const env = { BACKSTOP_DATABASE_URL: catalog.url };
    const crashed = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
    await claimRunById(catalog.pool, crashed.id, { leaseTtlMs: 600_000, claimedBy: 'crashed-runner' });
    const report = await runCli(['report', crashed.id, '--job-status', 'failure', '--json'], env);
    assert.equal(report.code, 0, report.stderr);
    const ended = await getRun(catalog.pool, crashed.id);
    assert.equal(ended.status, 'failed');
    assert.equal(ended.error?.code, 'EXECUTOR_ENDED');
    assert.match(ended.error!.message, /job status: failure/);

    const cancelledJob = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
    assert.equal((await runCli(['report', cancelledJob.id, '--job-status', 'cancelled'], env)).code, 0);
    assert.equal((await getRun(catalog.pool, cancelledJob.id)).status, 'cancelled');

    const again = await runCli(['report', crashed.id, '--job-status', 'success'], env);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /Already ended/);
    assert.deepEqual(await getRun(catalog.pool, crashed.id), ended);

    const bad = await runCli(['report', crashed.id, '--job-status', 'maybe'], env);
    assert.equal(bad.code, 2);
  });
});
