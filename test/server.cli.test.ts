import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

/**
 * `backstop token …` and `backstop server` as real processes: tokens are printed once and
 * stored hashed, `--quickstart` hands out the first admin token, and SIGTERM shuts the server
 * down cleanly (exit 0).
 */

describe('server and token commands', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let env: Record<string, string>;
  let processes: CliProcess[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    env = { BACKSTOP_DATABASE_URL: catalog.url };
  });

  afterEach(async () => {
    await killAll(processes);
    processes = [];
  });

  after(async () => {
    await catalog?.close();
  });

  const startServerProcess = async (args: string[]) => {
    const cli = startCli(['server', '--port', '0', '--no-worker', ...args], env);
    processes.push(cli);
    const url = await waitFor('the server URL on stdout', () => /serving (http:\/\/\S+) /.exec(cli.stdout())?.[1], 20_000);
    return { cli, url };
  };

  it('token create prints the token once; list never shows it; revoke ends it', async () => {
    const created = await runCli(['token', 'create', '--name', 'ci', '--role', 'operator'], env);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^bst_[A-Za-z0-9_-]{43}$/);
    const { rows } = await catalog.pool.query<{ token_hash: string }>('select token_hash from backstop.api_tokens where name = $1', ['ci']);
    assert.match(rows[0]!.token_hash, /^[0-9a-f]{64}$/);
    assert.notEqual(rows[0]!.token_hash, token);

    const listed = await runCli(['token', 'list', '--json'], env);
    assert.equal(listed.code, 0);
    assert.ok(!listed.stdout.includes(token));
    const [record] = JSON.parse(listed.stdout) as Array<{ id: string; role: string; revokedAt: string | null }>;
    assert.equal(record!.role, 'operator');
    assert.equal(record!.revokedAt, null);

    const revoked = await runCli(['token', 'revoke', record!.id], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    const state = await catalog.pool.query<{ revoked_at: string | null }>('select revoked_at from backstop.api_tokens where id = $1', [record!.id]);
    assert.ok(state.rows[0]!.revoked_at);
  });

  it('token create --owner records who holds a token: list shows it, and the API names it in /me', async () => {
    const created = await runCli(['token', 'create', '--name', 'nightly', '--role', 'viewer', '--owner', 'platform team'], env);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stderr, /\("nightly", viewer, held by platform team\) created/);
    const token = created.stdout.trim();
    const listed = await runCli(['token', 'list'], env);
    assert.match(listed.stdout, /OWNER/);
    assert.match(listed.stdout, /nightly +viewer +platform team/);
    const json = JSON.parse((await runCli(['token', 'list', '--json'], env)).stdout) as Array<{ name: string; owner: string | null }>;
    assert.equal(json.find((record) => record.name === 'nightly')!.owner, 'platform team');
    const refused = await runCli(['token', 'create', '--name', 'x', '--role', 'viewer', '--owner', '  '], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--owner/);

    const { url } = await startServerProcess([]);
    const me = await fetch(`${url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual({ ...((await me.json()) as object), id: undefined }, { id: undefined, name: 'nightly', role: 'viewer', kind: 'token', owner: 'platform team' });
  });

  it('server --quickstart prints an admin token on first start only; SIGTERM stops it cleanly', async () => {
    const first = await startServerProcess(['--quickstart']);
    const token = await waitFor('the admin token', () => /^\s+(bst_\S+)$/m.exec(first.cli.stdout())?.[1]);
    const runs = await fetch(`${first.url}/api/v1/runs`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(runs.status, 200);
    assert.equal((await fetch(`${first.url}/readyz`)).status, 200);
    first.cli.child.kill('SIGTERM');
    const exit = await first.cli.exited;
    assert.equal(exit.code, 0, first.cli.stderr());
    assert.match(first.cli.stderr(), /server stopped/);
    assert.ok(!first.cli.stderr().includes(token), 'the admin token was logged');

    const second = await startServerProcess(['--quickstart']);
    await waitFor('startup message', () => second.cli.stdout().includes('Stop with'));
    assert.ok(!/bst_/.test(second.cli.stdout()), 'a second admin token was printed');
    second.cli.child.kill('SIGINT');
    const secondExit = await second.cli.exited;
    assert.equal(secondExit.code, 0, `exit ${JSON.stringify(secondExit)}: ${second.cli.stderr().slice(-2000)}`);
  });

  it('refuses a bad role with exit code 2', async () => {
    const result = await runCli(['token', 'create', '--name', 'x', '--role', 'root'], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /Unknown role "root"/);
  });
});
