import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { runCli } from './support/cli.ts';
import { createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';

/**
 * "Only a succeeded backup can be restored or drilled" is one rule (src/core/succeededBackup.ts)
 * that every way in asks: `backstop restore` and `backstop verify`, POST /api/v1/runs/:id/restore
 * and /verify, and the drill itself when it starts. Each refuses a run that is not a succeeded
 * backup with the same code and the same words, and nothing is started or queued.
 */

const TEST_TIMEOUT = { timeout: 120_000 };

interface Refusal {
  code: string;
  message: string;
}

describe('only a succeeded backup is restored or drilled, one rule for the CLI, the API and the drill', () => {
  let catalog: TestCatalog;
  let destination: TestDatabase;
  let api: TestServer;
  let env: Record<string, string>;
  const refused: Record<'failed' | 'queued' | 'drill', string> = { failed: '', queued: '', drill: '' };

  const countRows = async () =>
    (
      await catalog.pool.query<{ runs: number; events: number }>(
        `select (select count(*)::int from backstop.runs) as runs,
                (select count(*)::int from backstop.run_events where kind like 'restore%') as events`,
      )
    ).rows[0]!;

  /** The refusal as `--json` prints it: one document, the code a field of its own. */
  const cliRefusal = async (args: string[]): Promise<Refusal> => {
    const result = await runCli([...args, '--json'], env);
    assert.equal(result.code, 2, result.stderr);
    return (JSON.parse(result.stdout) as { error: Refusal }).error;
  };

  const apiRefusal = async (path: string, body?: unknown): Promise<Refusal> => {
    const result = await api.request('POST', path, { token: api.tokens.operator, body });
    assert.equal(result.status, 400, result.text);
    return result.json.error as Refusal;
  };

  before(async () => {
    catalog = await createTestCatalog();
    destination = await createTestDatabase('rule_destination');
    env = { BACKSTOP_DATABASE_URL: catalog.url };
    api = await startTestServer({ catalogUrl: catalog.url });
    const target = await createTarget(catalog.pool, {
      name: 'rule',
      databaseUrl: 'postgres://u:p@127.0.0.1:1/rule',
      storeUrl: 'file:///tmp/backstop-rule',
      // Operators may restore here, so that the API's destination rule is not what refuses.
      options: { restoreTo: ['*:*/*'] },
    });
    refused.queued = (await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 3_600_000 })).id;
    const { rows } = await catalog.pool.query<{ id: string }>(
      `insert into backstop.runs (target_id, status, attempt, deadline_at, started_at, finished_at, error_code, error_message)
       values ($1, 'failed', 1, now() + interval '1 hour', now() - interval '2 seconds', now(), 'DUMP_FAILED', 'pg_dump stopped with an error.')
       returning id`,
      [target.id],
    );
    refused.failed = rows[0]!.id;
    refused.drill = (await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 3_600_000, kind: 'verify', subjectRunId: refused.failed })).id;
  });

  after(async () => {
    await api?.close();
    await destination?.drop();
    await catalog?.close();
  });

  for (const what of ['failed', 'queued', 'drill'] as const) {
    it(`a ${what === 'drill' ? 'drill run' : `${what} backup`}: restore and verify refused alike through the CLI and the API, nothing started`, TEST_TIMEOUT, async () => {
      const runId = refused[what];
      const before = await countRows();

      const restoreByCli = await cliRefusal(['restore', runId, '--to', destination.url]);
      const restoreByApi = await apiRefusal(`/api/v1/runs/${runId}/restore`, { databaseUrl: destination.url });
      assert.deepEqual(restoreByApi, restoreByCli);
      assert.equal(restoreByCli.code, 'INVALID_INPUT');
      assert.match(restoreByCli.message, new RegExp(`^Run ${runId} is .*; only a succeeded backup can be restored\\.`));

      const verifyByCli = await cliRefusal(['verify', runId]);
      const verifyByApi = await apiRefusal(`/api/v1/runs/${runId}/verify`);
      assert.deepEqual(verifyByApi, verifyByCli);
      assert.equal(verifyByCli.code, 'INVALID_INPUT');
      assert.match(verifyByCli.message, new RegExp(`^Run ${runId} is .*; only a succeeded backup can be verified\\.`));

      assert.deepEqual(await countRows(), before, 'a refused restore or drill queued a run or recorded a restore');
    });
  }

  it('the drill itself, started for a backup that is not a succeeded one, ends failed with the same refusal', TEST_TIMEOUT, async () => {
    const verifyByCli = await cliRefusal(['verify', refused.failed]);
    // A drill queued around the checks (here: straight into the catalog) meets the rule when it starts.
    const result = await runCli(['run', refused.drill, '--json'], env);
    assert.equal(result.code, 2, result.stderr);
    const drill = JSON.parse(result.stdout) as { kind: string; status: string; error: Refusal };
    assert.equal(drill.kind, 'verify');
    assert.equal(drill.status, 'failed');
    assert.deepEqual(drill.error, verifyByCli);
  });
});
