import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { runCli } from './support/cli.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';

/**
 * A request that reaches an operation from the CLI and from the API is checked by the
 * operation's one schema: the same bad value is refused by both with the same words for the
 * same field (the CLI names the field by its flag), and nothing is created.
 */

const TEST_TIMEOUT = { timeout: 120_000 };

interface Problem {
  field: string;
  message: string;
}

describe('the CLI and the API refuse a bad request with the same words', () => {
  let catalog: TestCatalog;
  let api: TestServer;
  let env: Record<string, string>;
  let runId: string;

  /** The one problem the API names, and the CLI's line for the same request. */
  const refusals = async (cli: string[], flag: string, request: { method: string; path: string; body: unknown }) => {
    const byApi = await api.request(request.method, request.path, { token: api.tokens.admin, body: request.body });
    assert.equal(byApi.status, 400, byApi.text);
    assert.equal(byApi.json.error.code, 'INVALID_INPUT');
    const problems = byApi.json.error.fields as Problem[];
    assert.equal(problems.length, 1, byApi.text);
    const byCli = await runCli([...cli, '--json'], env);
    assert.equal(byCli.code, 2, byCli.stderr);
    const cliError = (JSON.parse(byCli.stdout) as { error: { code: string; message: string } }).error;
    assert.equal(cliError.code, 'INVALID_INPUT');
    assert.equal(cliError.message, `${flag}: ${problems[0]!.message.replace(/\.$/, '')}.`);
    return problems[0]!;
  };

  const counts = async () =>
    (
      await catalog.pool.query<{ runs: number; tokens: number; events: number }>(
        `select (select count(*)::int from backstop.runs) as runs, (select count(*)::int from backstop.api_tokens) as tokens,
                (select count(*)::int from backstop.run_events) as events`,
      )
    ).rows[0]!;

  before(async () => {
    catalog = await createTestCatalog();
    env = { BACKSTOP_DATABASE_URL: catalog.url };
    api = await startTestServer({ catalogUrl: catalog.url });
    const target = await createTarget(catalog.pool, { name: 'requests', databaseUrl: 'postgres://u:p@127.0.0.1:1/x', storeUrl: 'file:///tmp/backstop-requests' });
    runId = (await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 3_600_000 })).id;
  });

  after(async () => {
    await api?.close();
    await catalog?.close();
  });

  it('a token name out of its rule: `token create --name` and POST /api/v1/tokens', TEST_TIMEOUT, async () => {
    const before = await counts();
    const problem = await refusals(['token', 'create', '--name', '-dash first', '--role', 'viewer'], '--name', {
      method: 'POST',
      path: '/api/v1/tokens',
      body: { name: '-dash first', role: 'viewer' },
    });
    assert.equal(problem.field, 'name');
    assert.match(problem.message, /^must be 1 to 100 letters, digits/);
    assert.deepEqual(await counts(), before);
  });

  it('an unknown role: `token create --role` and POST /api/v1/tokens', TEST_TIMEOUT, async () => {
    const problem = await refusals(['token', 'create', '--name', 'ci', '--role', 'root'], '--role', {
      method: 'POST',
      path: '/api/v1/tokens',
      body: { name: 'ci', role: 'root' },
    });
    assert.equal(problem.field, 'role');
    assert.match(problem.message, /Unknown role "root"\. Use one of: admin, operator, viewer/);
  });

  it('parallel jobs out of range: `restore --jobs` and POST /api/v1/runs/:id/restore, before the backup is even looked at', TEST_TIMEOUT, async () => {
    const before = await counts();
    const problem = await refusals(['restore', runId, '--to', 'postgres://u:p@127.0.0.1:1/x', '--jobs', '65'], '--jobs', {
      method: 'POST',
      path: `/api/v1/runs/${runId}/restore`,
      body: { databaseUrl: 'postgres://u:p@127.0.0.1:1/x', jobs: 65 },
    });
    assert.equal(problem.field, 'jobs');
    assert.equal(problem.message, 'must be at most 64');
    assert.deepEqual(await counts(), before, 'a refused restore recorded an event');
  });
});
