import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { createTarget } from '../src/db/targets.ts';
import { killAll, repoRoot, startCli, type CliProcess } from './support/cli.ts';
import { insertFailedRun } from './support/runRows.ts';
import { createSampleDatabase, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

/**
 * The CLI's edges through the real CLI and a real catalog: with `--json` every outcome, errors
 * too, is one JSON document on stdout; no output carries a stack trace; a closed pipe is
 * silent; OS errors are one line that says what to do; run ids may be shortened as the
 * dashboard shows them; `runs show` exits with the run's status.
 */

const UNKNOWN_RUN = '3f1c2b4a-0d5e-4f6a-8b7c-9d0e1f2a3b4c';
const TEST_TIMEOUT = { timeout: 300_000 };
// A stack frame, as printed ("\n    at f (file:1:2)") or inside a JSON log line ("\\n    at ").
const STACK_FRAME = /(^|\n|\\n)\s+at \S/;

function assertNoStack(output: { stdout: string; stderr: string }, what: string): void {
  assert.doesNotMatch(output.stdout, STACK_FRAME, `${what}: a stack trace on stdout:\n${output.stdout}`);
  assert.doesNotMatch(output.stderr, STACK_FRAME, `${what}: a stack trace on stderr:\n${output.stderr}`);
}

describe('the CLI keeps its promises', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  let processes: CliProcess[] = [];
  let succeeded: string;
  let failed: string;

  const cli = async (args: string[], extra: Record<string, string> = {}) => {
    const started = startCli(args, { ...env, ...extra });
    processes.push(started);
    const { code, signal } = await started.exited;
    const result = { code, signal, stdout: started.stdout(), stderr: started.stderr() };
    assertNoStack(result, `backstop ${args.join(' ')}`);
    return result;
  };

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(50);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-edges-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
    const backup = await cli(['backup', source.url, '--target', 'edges', '--json']);
    assert.equal(backup.code, 0, backup.stderr);
    succeeded = (JSON.parse(backup.stdout) as { id: string }).id;
    // A failed run of the same target, as a runner records one.
    failed = await insertFailedRun(catalog.pool, succeeded);
  });

  afterEach(async () => {
    await killAll(processes);
    processes = [];
  });

  after(async () => {
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  describe('--json errors are one JSON document on stdout', () => {
    // Every command's failing inputs, with and without --json, are in cli.everyCommand.test.ts.
    it('a usage error with --json (a required option missing) is a document too, exit 2', TEST_TIMEOUT, async () => {
      const result = await cli(['restore', UNKNOWN_RUN, '--json']);
      assert.equal(result.code, 2);
      const document = JSON.parse(result.stdout) as { error: { code: string; message: string } };
      assert.equal(document.error.code, 'INVALID_INPUT');
      assert.match(document.error.message, /--to/);
    });

    it('a failed `restore --json` prints a restore document shaped like a run: status failed and error.code', TEST_TIMEOUT, async () => {
      // The sample database is not empty: the restore is refused, after the artifact was read.
      const result = await cli(['restore', succeeded, '--to', source.url, '--json']);
      assert.equal(result.code, 5, result.stderr);
      const document = JSON.parse(result.stdout) as Record<string, unknown> & { error: { code: string } };
      assert.equal(document.runId, succeeded);
      assert.equal(document.kind, 'restore');
      assert.equal(document.target, 'edges');
      assert.equal(document.status, 'failed');
      assert.equal(document.error.code, 'RESTORE_TARGET_NOT_EMPTY');
      assert.ok(typeof document.startedAt === 'string' && typeof document.finishedAt === 'string');
    });

    it('`runs show --json` of a failed run: the run document, exit code of its error', TEST_TIMEOUT, async () => {
      const result = await cli(['runs', 'show', failed, '--json']);
      assert.equal(result.code, 10, result.stderr);
      const document = JSON.parse(result.stdout) as { status: string; error: { code: string } };
      assert.equal(document.status, 'failed');
      assert.equal(document.error.code, 'DUMP_FAILED');
    });
  });

  describe('exit codes follow the run', () => {
    it('`runs show` of a failed run exits with its code (10, as `run` did); of a succeeded one, 0', TEST_TIMEOUT, async () => {
      const bad = await cli(['runs', 'show', failed]);
      assert.equal(bad.code, 10, bad.stderr);
      assert.match(bad.stdout, /failed.*DUMP_FAILED/);
      const good = await cli(['runs', 'show', succeeded]);
      assert.equal(good.code, 0, good.stderr);
    });

    it('`runs show --follow` waits for a run to end, printing its events as they happen, then exits with its status', TEST_TIMEOUT, async () => {
      const queued = await cli(['trigger', 'edges', '--json']);
      assert.equal(queued.code, 0, queued.stderr);
      const runId = (JSON.parse(queued.stdout) as { id: string }).id;
      const follow = startCli(['runs', 'show', runId.slice(0, 8), '--follow'], env);
      processes.push(follow);
      await waitFor('the queued run followed', () => /\screated\b/.test(follow.stderr()));
      assert.equal(follow.child.exitCode, null, 'still following a queued run');
      const ran = await cli(['run', runId]);
      assert.equal(ran.code, 0, ran.stderr);
      const { code } = await follow.exited;
      assert.equal(code, 0, follow.stderr());
      // Events recorded after it started, printed as they came, then the run as `runs show` prints it.
      assert.match(follow.stderr(), /\sclaimed \(running\)[\s\S]*\sfinished \(succeeded\)/);
      assert.match(follow.stdout(), new RegExp(`${runId}[\\s\\S]*succeeded`));
      const followedFailure = await cli(['runs', 'show', failed, '--follow', '--json']);
      assert.equal(followedFailure.code, 10, 'an ended run: no wait, its exit code');
      assert.equal((JSON.parse(followedFailure.stdout) as { status: string }).status, 'failed');
    });
  });

  describe('run id prefixes', () => {
    it('`runs show` accepts the 8 characters the dashboard shows', TEST_TIMEOUT, async () => {
      const result = await cli(['runs', 'show', succeeded.slice(0, 8), '--json']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal((JSON.parse(result.stdout) as { id: string }).id, succeeded);
    });

    it('an ambiguous prefix is refused, listing the matches; an unmatched one is RUN_NOT_FOUND', TEST_TIMEOUT, async () => {
      const twins = ['abcdef01-0000-4000-8000-000000000001', 'abcdef01-0000-4000-8000-000000000002'];
      for (const id of twins) {
        await catalog.pool.query(
          `insert into backstop.runs (id, target_id, status, deadline_at, finished_at, error_code, error_message)
           select $1, target_id, 'cancelled', now(), now(), 'CANCELLED', 'test' from backstop.runs where id = $2`,
          [id, succeeded],
        );
      }
      const ambiguous = await cli(['runs', 'show', 'abcdef01']);
      assert.equal(ambiguous.code, 2, ambiguous.stderr);
      for (const id of twins) assert.ok(ambiguous.stderr.includes(id), ambiguous.stderr);
      assert.match(ambiguous.stderr, /more characters/);
      assert.equal(ambiguous.stdout, '');

      const none = await cli(['runs', 'show', 'ffffffff', '--json']);
      assert.equal(none.code, 4, none.stderr);
      assert.equal((JSON.parse(none.stdout) as { error: { code: string } }).error.code, 'RUN_NOT_FOUND');
    });
  });

  describe('runs --limit past one page', () => {
    it('`runs --limit N` lists the N newest runs, read page by page as the API serves them', TEST_TIMEOUT, async () => {
      const target = await createTarget(catalog.pool, { name: 'many', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
      await catalog.pool.query(
        `insert into backstop.runs (target_id, status, deadline_at, created_at, finished_at, error_code, error_message)
         select $1, 'cancelled', now(), now() - i * interval '1 second', now(), 'CANCELLED', 'test' from generate_series(1, 260) as i`,
        [target.id],
      );
      const listed = async (limit: number) => {
        const result = await cli(['runs', '--target', 'many', '--limit', String(limit), '--json']);
        assert.equal(result.code, 0, result.stderr);
        return JSON.parse(result.stdout) as Array<{ id: string; createdAt: string }>;
      };
      const some = await listed(250);
      assert.equal(some.length, 250);
      assert.equal(new Set(some.map((run) => run.id)).size, 250, 'a run was listed twice across pages');
      const times = some.map((run) => Date.parse(run.createdAt));
      assert.deepEqual(
        times,
        [...times].sort((a, b) => b - a),
        'not newest first',
      );
      assert.equal((await listed(1000)).length, 260);
      assert.equal((await cli(['runs', '--limit', '1001'])).code, 2);
    });
  });

  describe('a closed pipe is silent', () => {
    for (const when of ['after the first line', 'before any output'] as const) {
      it(`\`runs show ID\` whose reader closes ${when}: no stack trace, exit 0`, TEST_TIMEOUT, async () => {
        const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'backstop.js'), 'runs', 'show', succeeded], {
          cwd: repoRoot,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, BACKSTOP_LOG_LEVEL: 'info', ...env },
        });
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        let firstLine = '';
        if (when === 'before any output') child.stdout.destroy();
        else {
          child.stdout.on('data', (chunk: Buffer) => {
            firstLine ||= chunk.toString().split('\n')[0]!;
            child.stdout.destroy();
          });
        }
        const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
          child.on('exit', (exitCode, exitSignal) => resolve({ code: exitCode, signal: exitSignal })),
        );
        assert.doesNotMatch(stderr, STACK_FRAME, stderr);
        assert.doesNotMatch(stderr, /EPIPE/, stderr);
        assert.equal(signal, null);
        assert.equal(code, 0, stderr);
        if (when === 'after the first line') assert.match(firstLine, new RegExp(`Run ${succeeded}`));
      });
    }
  });

  describe('OS errors are one line that says what to do', () => {
    it('`backup --store /etc/passwd/x` (a path through a file): one line, STORE_WRITE_FAILED, exit 12', TEST_TIMEOUT, async () => {
      const result = await cli(['backup', source.url, '--target', 'enotdir', '--store', '/etc/passwd/x']);
      assert.equal(result.code, 12, `${result.stdout}\n${result.stderr}`);
      const said = `${result.stdout}${result.stderr}`;
      assert.match(said, /STORE_WRITE_FAILED/);
      assert.doesNotMatch(said, /INTERNAL/);
      assert.match(said, /not a folder/);
      assert.match(said, /\/etc\/passwd/);
    });

    it('`server --port` on a busy port: one line naming the port and what to do, exit 2', TEST_TIMEOUT, async () => {
      const busy = net.createServer();
      await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
      const port = (busy.address() as net.AddressInfo).port;
      try {
        const result = await cli(['server', '--port', String(port), '--no-worker'], { BACKSTOP_LOG_LEVEL: 'error' });
        assert.equal(result.code, 2, result.stderr);
        const lines = result.stderr.trim().split('\n');
        assert.equal(lines.length, 1, result.stderr);
        assert.match(lines[0]!, new RegExp(`${port}`));
        assert.match(lines[0]!, /another --port/);
        assert.match(lines[0]!, /\[INVALID_INPUT\]/);
      } finally {
        await new Promise<void>((resolve) => busy.close(() => resolve()));
      }
    });
  });

  describe('prune --dry-run', () => {
    it('prints its report and no stack trace, even when a target cannot be read', TEST_TIMEOUT, async () => {
      // A second target whose store is a path through a file: its prune fails, the others report.
      await catalog.pool.query(
        `insert into backstop.targets (name, database_url, store_url, options)
         select 'unreadable', database_url, 'file:///etc/passwd/x', options from backstop.targets where name = 'edges'`,
      );
      try {
        const result = await cli(['prune', '--dry-run']);
        assert.match(result.stdout, /^edges:/m, result.stdout);
        assert.match(result.stdout, /Dry run: nothing was deleted\./);
        // The unreadable target's line says why in plain words; the exit code is the store's.
        assert.match(result.stdout, /^unreadable:.*\n\s+error: \[STORE_READ_FAILED\] .*not a folder/m, result.stdout);
        assert.doesNotMatch(result.stdout, /INTERNAL/);
        assert.equal(result.code, 12, result.stderr);
      } finally {
        await catalog.pool.query(`delete from backstop.targets where name = 'unreadable'`);
      }
    });
  });
});
