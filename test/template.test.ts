import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { claimRunById } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { ACTION_PLACEHOLDER } from '../src/cli/commands/init.ts';
import { BACKSTOP_REPOSITORY } from '../src/version.ts';
import { repoRoot, runCli } from './support/cli.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import './support/jsonImports.ts';

const { NoOperationTraceWriter, parseWorkflow, convertWorkflowTemplate } = await import('@actions/workflow-parser');

const run = promisify(execFile);
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
    const steps = job.steps as Array<Record<string, any>>;
    // The job runs Backstop's own action, pinned to a full commit SHA that `init github` fills
    // in, for the run and for the always() step alike; nothing is installed from a registry.
    const runStep = steps.find((step) => step.id === 'backup')!;
    assert.equal(runStep.uses, ACTION_PLACEHOLDER);
    assert.equal(runStep.with['run-id'], '${{ inputs.run_id }}');
    assert.equal(runStep.with['job-status'], undefined);
    assert.ok(Number(runStep['timeout-minutes']) < job['timeout-minutes']);
    const last = steps.at(-1)!;
    assert.equal(last.if, 'always()');
    assert.equal(last.uses, ACTION_PLACEHOLDER);
    assert.equal(last.with['run-id'], '${{ inputs.run_id }}');
    assert.equal(last.with['job-status'], '${{ job.status }}');
    // pg_dump must match the server's major: the PGDG repository has every major, and the
    // input reaches the shell as a checked variable, never spliced into the script.
    const client = steps.find((step) => /postgresql-client/.test(String(step.run)))!;
    assert.equal(client.env.PG_MAJOR, '${{ inputs.pg_major }}');
    assert.match(client.run, /apt\.postgresql\.org\.sh -y/);
    assert.match(client.run, /postgresql-client-\$PG_MAJOR/);
    assert.match(client.run, /\*\[!0-9\]\*\) .*exit 2/);
    assert.doesNotMatch(client.run, /\$\{\{/);
    assert.match(content, /# pg_dump must be at least the server's major version[^\n]*\n[^\n]*PostgreSQL project's apt repository \(PGDG\)/);
    assert.equal(steps.indexOf(client), 0, 'the client is installed before the run step');

    // Over HTTP with the repository's runner token: the job never gets the catalog's URL, the
    // credentials reach only the steps that use them, and no input carries a secret (inputs
    // are public on the run's page and in the event payload).
    assert.doesNotMatch(content.replace(/^#.*$/gm, ''), /BACKSTOP_DATABASE_URL/);
    assert.equal(job.env, undefined, 'no secret is given to every step');
    for (const step of [runStep, last]) {
      assert.equal(step.with['api-url'], '${{ secrets.BACKSTOP_API_URL }}');
      assert.equal(step.with['runner-token'], '${{ secrets.BACKSTOP_RUNNER_TOKEN }}');
    }
    assert.equal(runStep.with['source-url'], '${{ secrets.BACKSTOP_SOURCE_URL }}');
    assert.equal(last.with['source-url'], undefined);
    assert.deepEqual(Object.keys(inputs).sort(), ['pg_major', 'run_id', 'target']);
    assert.doesNotMatch(JSON.stringify(workflow.on), /secret|token/i);
    assert.match(content, /^# Why the token lives in the repository's secrets, not in the dispatch: workflow_dispatch\n# inputs are public/m);
  });

  it("`backstop init github` pins the action to this version's commit or to --action-ref, and will not overwrite without --force", async () => {
    const repo = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-repo-'));
    const workflow = path.join(repo, '.github/workflows/backstop-backup.yml');
    try {
      const first = await runCli(['init', 'github', '--dir', repo], {});
      assert.equal(first.code, 0, first.stderr);
      const written = await fs.readFile(workflow, 'utf8');
      const head = (await run('git', ['--git-dir', path.join(repoRoot, '.git'), 'rev-parse', 'HEAD'])).stdout.trim();
      const uses = [...written.matchAll(/^\s+uses: (.+)$/gm)].map((match) => match[1]);
      assert.deepEqual(uses, [`${BACKSTOP_REPOSITORY}@${head}`, `${BACKSTOP_REPOSITORY}@${head}`]);
      assert.equal(BACKSTOP_REPOSITORY, 'backstop-pg/backstop');
      assert.doesNotMatch(written, /OWNER\/REPO@FULL_COMMIT_SHA/);
      const parsed = parseWorkflow({ name: 'backstop-backup.yml', content: written }, new NoOperationTraceWriter());
      assert.deepEqual(
        parsed.context.errors.getErrors().map((error) => error.message),
        [],
      );
      for (const step of ['backstop token create --name github-REPO --github OWNER/REPO', 'BACKSTOP_API_URL', 'BACKSTOP_RUNNER_TOKEN', 'BACKSTOP_SOURCE_URL']) {
        assert.ok(first.stdout.includes(step), `init github's instructions mention ${step}`);
      }
      assert.doesNotMatch(first.stdout, /BACKSTOP_DATABASE_URL/);
      const again = await runCli(['init', 'github', '--dir', repo], {});
      assert.equal(again.code, 2);
      assert.match(again.stderr, /--force/);

      const fork = `acme/backstop-fork@${'a1'.repeat(20)}`;
      const pinned = await runCli(['init', 'github', '--dir', repo, '--force', '--action-ref', fork], {});
      assert.equal(pinned.code, 0, pinned.stderr);
      assert.equal(pinned.stderr, '');
      assert.equal([...(await fs.readFile(workflow, 'utf8')).matchAll(new RegExp(`uses: ${fork}$`, 'gm'))].length, 2);

      const branch = await runCli(['init', 'github', '--dir', repo, '--force', '--action-ref', 'acme/backstop-fork@main'], {});
      assert.equal(branch.code, 0, branch.stderr);
      assert.match(branch.stderr, /not a full commit SHA/);

      const bad = await runCli(['init', 'github', '--dir', repo, '--force', '--action-ref', 'backstop@0.1.0'], {});
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--action-ref must be OWNER\/REPO@COMMIT_SHA/);
    } finally {
      await fs.rm(repo, { recursive: true, force: true });
    }
  });
});

/**
 * Lines of a workflow or template that would fetch a package from a registry by its name at
 * run time: whoever controls that name (today, or after it changes hands) runs code with the
 * job's secrets. Installing from a path (a tarball, a folder) is not flagged.
 */
function registryFetches(text: string): string[] {
  const fetching = [
    /(^|[\s;&|(`])(npx|bunx|pnpx)(\s|$)/,
    /\b(pnpm|yarn|npm)\s+(dlx|exec|x)\b/,
    /\b(npm|pnpm|yarn|bun)\s+(install|i|add|in|isntall)\b(?=.*\s(?![-./~$]|file:)[@a-z0-9])/i,
  ];
  return text
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, ''))
    .filter((line) => fetching.some((pattern) => pattern.test(line)));
}

describe('no workflow or template installs a package from a registry by name', () => {
  it('recognises the ways a step can', () => {
    for (const line of [
      'run: npx --yes "backstop@${BACKSTOP_VERSION}" run "$RUN_ID"',
      '  run: npm install -g backstop',
      'npm i @backstop-pg/backstop',
      'run: npm exec -- backstop run',
      'yarn dlx backstop',
      'cd x && npx backstop',
    ]) {
      assert.deepEqual(registryFetches(line), [line], line);
    }
    for (const line of ['npm install -g ./backstop-pg-backstop-0.1.0.tgz', 'npm ci --no-audit', 'echo npxy', '# npx backstop, in a comment', 'uses: acme/backstop@abc']) {
      assert.deepEqual(registryFetches(line), [], line);
    }
  });

  it('holds for the template, action.yml and every workflow in the repository', async () => {
    const files = [path.join(repoRoot, 'action.yml')];
    for (const dir of ['templates', '.github']) {
      const entries = await fs.readdir(path.join(repoRoot, dir), { recursive: true }).catch(() => [] as string[]);
      files.push(...entries.filter((entry) => /\.ya?ml$/.test(entry)).map((entry) => path.join(repoRoot, dir, entry)));
    }
    assert.ok(files.some((file) => file.endsWith(path.join('templates', 'github', 'backup.yml'))));
    for (const file of files) assert.deepEqual(registryFetches(await fs.readFile(file, 'utf8')), [], path.relative(repoRoot, file));
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
