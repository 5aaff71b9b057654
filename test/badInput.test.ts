import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { killAll, startCli, type CliProcess } from './support/cli.ts';
import { waitFor } from './support/wait.ts';
import { createSampleDatabase, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';

/**
 * Bad input through the real CLI: every mistake ends with the documented exit code, a message
 * that says what is wrong and what to do, no secret in any output or catalog row, and no run
 * left behind that is not terminal.
 */

const UNKNOWN_RUN = '3f1c2b4a-0d5e-4f6a-8b7c-9d0e1f2a3b4c';
const EXPECTED_URL_FORM = 'postgres://USER:PASSWORD@HOST:PORT/DATABASE';
// Per test, not per suite: a suite timeout would run `after` (dropping the catalog) under a test still running.
const TEST_TIMEOUT = { timeout: 300_000 };

describe('bad input through the CLI', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  let processes: CliProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(50);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-store-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
  });

  afterEach(async () => {
    await killAll(processes);
    processes = [];
  });

  after(async () => {
    // No mistake may leave a run that nobody will ever end.
    const { rows } = await catalog.pool.query<{ count: number }>(`select count(*)::int as count from backstop.runs where status in ('queued', 'dispatched', 'running', 'cancelling')`);
    await catalog.close();
    await source.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
    assert.equal(rows[0]!.count, 0, 'runs left non-terminal after the bad-input tests');
  });

  const cli = async (args: string[], extra: Record<string, string> = {}) => {
    const started = startCli(args, { ...env, ...extra });
    processes.push(started);
    const { code } = await started.exited;
    return { code, stdout: started.stdout(), stderr: started.stderr() };
  };

  const runCount = async () => (await catalog.pool.query<{ count: number }>('select count(*)::int as count from backstop.runs')).rows[0]!.count;

  describe('run ids', () => {
    const commands: Array<[string, (id: string) => string[]]> = [
      ['run', (id) => ['run', id]],
      ['cancel', (id) => ['cancel', id]],
      ['runs show', (id) => ['runs', 'show', id]],
      ['restore', (id) => ['restore', id, '--to', source.url]],
    ];

    for (const [name, args] of commands) {
      it(`\`${name}\` with an unknown run id: exit 4, the message names the id`, TEST_TIMEOUT, async () => {
        const before = await runCount();
        const result = await cli(args(UNKNOWN_RUN));
        assert.equal(result.code, 4, result.stderr);
        assert.match(result.stderr, new RegExp(`No run with id ${UNKNOWN_RUN}`));
        assert.match(result.stderr, /\[RUN_NOT_FOUND\]/);
        assert.match(result.stderr, /backstop runs/, 'the message says how to find run ids');
        assert.equal(await runCount(), before);
      });

      it(`\`${name}\` with a malformed run id: exit 4`, TEST_TIMEOUT, async () => {
        const result = await cli(args('not-a-run'));
        assert.equal(result.code, 4, result.stderr);
        // `restore` also takes a manifest URL, and says so.
        assert.match(result.stderr, /"not-a-run" is (not|neither) a run id/);
        assert.match(result.stderr, /UUID/);
        assert.match(result.stderr, /\[RUN_NOT_FOUND\]/);
      });
    }
  });

  describe('backup with a bad database URL', () => {
    for (const url of ['notaurl', 'mysql://x@y/z', 'postgres://']) {
      it(`\`backup ${url}\`: exit 2, says the expected form, creates no run`, TEST_TIMEOUT, async () => {
        const runsBefore = await runCount();
        const targetsBefore = (await catalog.pool.query('select id from backstop.targets')).rowCount;
        const result = await cli(['backup', url]);
        assert.equal(result.code, 2, result.stderr);
        assert.ok(result.stderr.includes(EXPECTED_URL_FORM), result.stderr);
        assert.match(result.stderr, /\[INVALID_INPUT\]/);
        assert.equal(await runCount(), runsBefore);
        assert.equal((await catalog.pool.query('select id from backstop.targets')).rowCount, targetsBefore);
      });
    }

    const targetNames = async () => (await catalog.pool.query<{ name: string }>('select name from backstop.targets order by name')).rows.map((row) => row.name);

    it('an unreachable database: exit 8, DATABASE_UNREACHABLE naming the URL argument, no target or run left, and the password is nowhere', TEST_TIMEOUT, async () => {
      const secret = 'SECRETPW';
      const [targetsBefore, runsBefore] = [await targetNames(), await runCount()];
      const result = await cli(['backup', `postgres://u:${secret}@127.0.0.1:1/db`, '--target', 'unreachable'], { BACKSTOP_LOG_LEVEL: 'debug' });
      assert.equal(result.code, 8, result.stderr);
      assert.match(
        result.stderr,
        /DATABASE_URL: Cannot connect to the database at postgres:\/\/u:\*{5}@127\.0\.0\.1:1\/db: .*Check that the server is running.*\[DATABASE_UNREACHABLE\]/,
      );
      assert.deepEqual(await targetNames(), targetsBefore, 'the target list is unchanged');
      assert.equal(await runCount(), runsBefore);
      for (const [where, text] of Object.entries({ stdout: result.stdout, stderr: result.stderr })) {
        assert.ok(!text.includes(secret), `the password appears in ${where}: ${text}`);
      }
    });

    it('no pg_dump to be found: exit 9, PG_TOOL_NOT_FOUND says what to install, before any target or run exists', TEST_TIMEOUT, async () => {
      const [targetsBefore, runsBefore] = [await targetNames(), await runCount()];
      const result = await cli(['backup', source.url, '--target', 'no-tools'], { BACKSTOP_PG_BIN: '/nonexistent', BACKSTOP_PG_BIN_ONLY: 'true' });
      assert.equal(result.code, 9, result.stderr);
      assert.match(result.stderr, /\[PG_TOOL_NOT_FOUND\]/);
      // This machine is Debian: the command that gets a client of any major.
      assert.match(
        result.stderr,
        /Install the PostgreSQL \d+ client from the PostgreSQL project's apt repository: `sudo apt-get install -y postgresql-common && sudo \/usr\/share\/postgresql-common\/pgdg\/apt\.postgresql\.org\.sh -y && sudo apt-get install -y postgresql-client-\d+`/,
      );
      assert.match(result.stderr, /BACKSTOP_PG_BIN/);
      assert.deepEqual(await targetNames(), targetsBefore);
      assert.equal(await runCount(), runsBefore);
    });
  });

  describe('configuration and catalog', () => {
    it('invalid settings: exit 2 with every problem listed', TEST_TIMEOUT, async () => {
      const result = await cli(['runs'], {
        BACKSTOP_LEASE_TTL: 'abc',
        BACKSTOP_HEARTBEAT_INTERVAL: '-1',
        BACKSTOP_REAPER_INTERVAL: '0',
        BACKSTOP_LOG_LEVEL: 'loud',
      });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /\[CONFIG_INVALID\]/);
      assert.match(result.stderr, /BACKSTOP_LEASE_TTL: must be a positive number of seconds, got "abc"/);
      assert.match(result.stderr, /BACKSTOP_HEARTBEAT_INTERVAL: must be a positive number of seconds, got "-1"/);
      assert.match(result.stderr, /BACKSTOP_REAPER_INTERVAL: must be a positive number of seconds, got "0"/);
      assert.match(result.stderr, /BACKSTOP_LOG_LEVEL/);
    });

    it('a heartbeat not shorter than the lease TTL: exit 2, reported with the other problems', TEST_TIMEOUT, async () => {
      const alone = await cli(['runs'], { BACKSTOP_LEASE_TTL: '5', BACKSTOP_HEARTBEAT_INTERVAL: '5' });
      assert.equal(alone.code, 2, alone.stderr);
      assert.match(alone.stderr, /BACKSTOP_HEARTBEAT_INTERVAL \(5s\) must be shorter than BACKSTOP_LEASE_TTL \(5s\)/);

      const together = await cli(['runs'], { BACKSTOP_LEASE_TTL: '5', BACKSTOP_HEARTBEAT_INTERVAL: '10', BACKSTOP_START_DEADLINE: 'soon' });
      assert.equal(together.code, 2, together.stderr);
      assert.match(together.stderr, /BACKSTOP_START_DEADLINE: must be a positive number of seconds, got "soon"/);
      assert.match(together.stderr, /BACKSTOP_HEARTBEAT_INTERVAL \(10s\) must be shorter than BACKSTOP_LEASE_TTL \(5s\)/);
    });

    it('an unreachable catalog: exit 7 with CATALOG_UNAVAILABLE, password redacted', TEST_TIMEOUT, async () => {
      for (const args of [['runs'], ['trigger', 'anything'], ['run', UNKNOWN_RUN]]) {
        const result = await cli(args, { BACKSTOP_DATABASE_URL: 'postgres://u:catalogpw@127.0.0.1:1/x' });
        assert.equal(result.code, 7, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, /\[CATALOG_UNAVAILABLE\]/);
        assert.match(result.stderr, /Cannot connect to the catalog at postgres:\/\/u:\*{5}@127\.0\.0\.1:1\/x/);
        assert.ok(!`${result.stdout}${result.stderr}`.includes('catalogpw'), result.stderr);
      }
    });

    it('the catalog connection cut mid-command (the catalog restarting): exit 7 with CATALOG_UNAVAILABLE, no stack trace', TEST_TIMEOUT, async () => {
      const runsBefore = await runCount();
      // A row lock on the target parks `trigger` inside its insert (the foreign key check);
      // terminating its backend is what a catalog restart does to it.
      assert.equal((await cli(['target', 'add', 'cut-off', '--database-url', source.url])).code, 0);
      const holder = await catalog.pool.connect();
      try {
        await holder.query('begin');
        await holder.query(`select 1 from backstop.targets where name = 'cut-off' for update`);
        const started = startCli(['trigger', 'cut-off'], env);
        processes.push(started);
        const pid = await waitFor('trigger waiting on the row lock', async () => {
          const { rows } = await catalog.pool.query<{ pid: number }>(
            `select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`,
          );
          return rows[0]?.pid;
        });
        await catalog.pool.query('select pg_terminate_backend($1)', [pid]);
        const { code } = await started.exited;
        assert.equal(code, 7, started.stderr());
        assert.match(started.stderr(), /lost the connection to the catalog: .*\[CATALOG_UNAVAILABLE\]/);
        assert.doesNotMatch(started.stderr(), /unexpected error| {4}at /);
      } finally {
        await holder.query('rollback').catch(() => {});
        holder.release();
      }
      assert.equal(await runCount(), runsBefore, 'the cut-off trigger queued nothing');
    });
  });

  describe('targets and listing', () => {
    it('`trigger` an unknown target: exit 4, nothing queued', TEST_TIMEOUT, async () => {
      const before = await runCount();
      const result = await cli(['trigger', 'no-such-target']);
      assert.equal(result.code, 4, result.stderr);
      assert.match(result.stderr, /No target named "no-such-target"/);
      assert.equal(await runCount(), before);
    });

    it('`target add` with an invalid name: exit 2', TEST_TIMEOUT, async () => {
      for (const name of ['Bad Name', '.leading-dot', 'UPPER', 'x'.repeat(64)]) {
        const result = await cli(['target', 'add', name, '--database-url', source.url]);
        assert.equal(result.code, 2, `${name}: ${result.stderr}`);
        assert.match(result.stderr, /NAME: must be 1 to 63 lowercase letters/);
      }
      const { rowCount } = await catalog.pool.query(`select 1 from backstop.targets where name in ('Bad Name', '.leading-dot', 'UPPER')`);
      assert.equal(rowCount, 0);
    });

    it('`target add` twice: exit 5, the first one kept; a run triggered on it is cancelled with `backstop cancel`', TEST_TIMEOUT, async () => {
      const first = await cli(['target', 'add', 'twice', '--database-url', source.url]);
      assert.equal(first.code, 0, first.stderr);
      const second = await cli(['target', 'add', 'twice', '--database-url', 'postgres://other:pw@127.0.0.1:1/other']);
      assert.equal(second.code, 5, second.stderr);
      assert.match(second.stderr, /A target named "twice" already exists/);
      const { rows } = await catalog.pool.query<{ database_url: string }>(`select database_url from backstop.targets where name = 'twice'`);
      assert.deepEqual(rows, [{ database_url: source.url }]);

      const triggered = await cli(['trigger', 'twice']);
      assert.equal(triggered.code, 0, triggered.stderr);
      const runId = triggered.stdout.trim();
      assert.match(runId, /^[0-9a-f-]{36}$/);
      const cancelled = await cli(['cancel', runId]);
      assert.equal(cancelled.code, 0, cancelled.stderr);
      assert.match(cancelled.stdout, new RegExp(`Run ${runId} cancelled`));
      const again = await cli(['run', runId]);
      assert.equal(again.code, 5, again.stderr);
      assert.match(again.stderr, /already finished as cancelled/);
    });

    it('`runs --status bogus`: exit 2, lists the valid statuses', TEST_TIMEOUT, async () => {
      const result = await cli(['runs', '--status', 'bogus']);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /Unknown status "bogus". Use one of: queued, dispatched, running, cancelling, succeeded, failed, cancelled, timed_out/);
      const limit = await cli(['runs', '--limit', 'lots']);
      assert.equal(limit.code, 2, limit.stderr);
    });
  });
});
