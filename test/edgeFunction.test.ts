import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import pino from 'pino';
import { startGithubExecutor, type GithubExecutor } from '../src/executors/github/githubExecutor.ts';
import { endRunFromExecutor } from '../src/db/executorRuns.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { reapRuns } from '../src/db/runLeases.ts';
import { getRun, requestCancel } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { githubClient } from '../src/executors/github/githubClient.ts';
import { listAudit } from '../src/operations/listAudit.ts';
import { createTriggerBackupHandler } from '../src/supabaseCatalog/triggerBackup.ts';
import { createJwtVerifier, remoteKeySet } from '../src/supabaseCatalog/verifyJwt.ts';
import { fastLeaseEnv, killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { startFakeGithub, type FakeGithub, type FakeRun } from './support/fakeGithub.ts';
import { generateSigner, signJwt, startJwksServer, type JwksServer, type TestSigner } from './support/jwks.ts';
import { createSampleDatabase, dumpSessions, holdTableLock, type TestDatabase } from './support/pg.ts';
import { createSupabaseCatalog, edgeSessions, seedOrganizations, type EdgeSessions, type OrgFixture, type SupabaseCatalog } from './support/supabaseCatalog.ts';
import { waitFor } from './support/wait.ts';

const TOKEN = 'ghp_fake_token_for_edge_tests';
const WORKFLOW = { owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml' };

describe('trigger-backup edge function (its logic under Node) → GitHub → `backstop run` → a terminal run', () => {
  let catalog: SupabaseCatalog;
  let fixture: OrgFixture;
  let source: TestDatabase;
  let storeDir: string;
  let jwks: JwksServer;
  let rsa: TestSigner;
  let ec: TestSigner;
  let stranger: TestSigner;
  let github: FakeGithub;
  let sessions: EdgeSessions;
  let executor: GithubExecutor;
  let handler: (request: Request) => Promise<Response>;
  let env: Record<string, string>;
  let ghTarget: { id: string; name: string };
  let queuedTarget: { id: string; name: string };
  let job: 'run' | 'none' = 'run';
  // Jobs keep a 10 s lease (a cancel still arrives within a heartbeat, 0.5 s) so that a loaded
  // machine does not expire it; the kill test wants the 2 s lease, to be reaped quickly.
  const steadyLease = { BACKSTOP_LEASE_TTL: '10', BACKSTOP_HEARTBEAT_INTERVAL: '0.5' };
  let jobLease: Record<string, string> = steadyLease;
  const jobs: CliProcess[] = [];

  before(async () => {
    catalog = await createSupabaseCatalog('sbedge');
    fixture = await seedOrganizations(catalog.url);
    source = await createSampleDatabase(300);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-edge-'));
    env = { BACKSTOP_DATABASE_URL: catalog.serviceUrl, ...fastLeaseEnv };
    [rsa, ec, stranger] = await Promise.all([generateSigner('RS256', 'rsa-1'), generateSigner('ES256', 'ec-1'), generateSigner('RS256', 'rsa-1')]);
    jwks = await startJwksServer([rsa.publicJwk, ec.publicJwk]);
    github = await startFakeGithub({ ...WORKFLOW, token: TOKEN });
    sessions = edgeSessions(catalog.functionUrl);

    // Targets are created by Backstop's own code, connected as its login role (through the
    // backstop_service policies), then given to organisation A.
    const created = await createTarget(catalog.pool, {
      name: 'edge-gh',
      databaseUrl: source.url,
      storeUrl: `file://${storeDir}`,
      executor: { kind: 'github', ...WORKFLOW, ref: 'main' },
    });
    const queued = await createTarget(catalog.pool, { name: 'edge-queued', databaseUrl: source.url, storeUrl: `file://${storeDir}` });
    await catalog.pool.query('update backstop.targets set organization_id = $1 where id = any($2::uuid[])', [fixture.orgs.a, [created.id, queued.id]]);
    ghTarget = { id: created.id, name: created.name };
    queuedTarget = { id: queued.id, name: queued.name };

    // The "job": a real `backstop run RUN_ID` against the Supabase catalog, as the workflow runs it.
    github.onDispatch((run: FakeRun) => {
      if (job === 'none') return;
      run.status = 'in_progress';
      const cli = startCli(['run', run.inputs.run_id!], { ...env, ...jobLease });
      jobs.push(cli);
      void cli.exited.then(({ code, signal }) => {
        if (run.status !== 'completed') github.complete(run.id, signal ? 'cancelled' : code === 0 ? 'success' : 'failure');
      });
    });
    const client = githubClient({ apiUrl: github.apiUrl, token: TOKEN, maxRateLimitWaitMs: 5000 });
    handler = createTriggerBackupHandler({
      verifyJwt: createJwtVerifier({ keySet: remoteKeySet(jwks.jwksUrl), issuer: `${jwks.supabaseUrl}/auth/v1`, audience: 'authenticated' }),
      asCaller: sessions.asCaller,
      asService: sessions.asService,
      github: client,
      runDeadlineMs: 3_600_000,
      startDeadlineMs: 60_000,
    });
    executor = startGithubExecutor({ db: catalog.pool, client, log: pino({ level: 'silent' }), startDeadlineMs: 60_000, intervalMs: 3_600_000 });
  });

  afterEach(async () => {
    const { rows } = await catalog.pool.query<{ id: string }>(`select id from backstop.runs where status in ('queued', 'dispatched', 'running', 'cancelling')`);
    for (const row of rows) await requestCancel(catalog.pool, row.id).catch(() => {});
    await executor.tickOnce();
    await killAll(jobs.splice(0));
    // A job killed before it saw the cancel leaves its run for a reaper; end it now, so the next
    // test does not meet an active run of the target.
    for (const row of await nonTerminal()) {
      await endRunFromExecutor(catalog.pool, { runId: row.id, status: 'cancelled', error: { code: 'CANCELLED', message: 'test cleanup' } });
    }
    job = 'run';
    jobLease = steadyLease;
  });

  after(async () => {
    executor?.stop();
    await sessions?.close();
    await github?.close();
    await jwks?.close();
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
    assert.deepEqual(github.violations, [], "every request and response follows GitHub's OpenAPI description");
  });

  const claimsFor = (user: keyof OrgFixture['users'], overrides: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: `${jwks.supabaseUrl}/auth/v1`,
      aud: 'authenticated',
      sub: fixture.users[user],
      role: 'authenticated',
      email: `${user}@example.com`,
      iat: now,
      exp: now + 3600,
      ...overrides,
    };
  };
  const tokenFor = (user: keyof OrgFixture['users'], signer: TestSigner = rsa, overrides: Record<string, unknown> = {}) => signJwt(signer, claimsFor(user, overrides));

  async function invoke(body: unknown, options: { token?: string | null; method?: string; rawBody?: string; forwardedFor?: string } = {}) {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (options.forwardedFor) headers['x-forwarded-for'] = options.forwardedFor;
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const method = options.method ?? 'POST';
    const response = await handler(
      new Request('http://127.0.0.1/functions/v1/trigger-backup', {
        method,
        headers,
        body: method === 'GET' || method === 'OPTIONS' ? undefined : (options.rawBody ?? JSON.stringify(body)),
      }),
    );
    const text = await response.text();
    return { status: response.status, headers: response.headers, json: (text ? JSON.parse(text) : null) as Record<string, any> };
  }

  const runCount = async () => Number((await catalog.pool.query<{ n: number }>('select count(*)::int as n from backstop.runs')).rows[0]!.n);
  const nonTerminal = async () => (await catalog.pool.query<{ id: string }>(`select id from backstop.runs where status in ('queued', 'dispatched', 'running', 'cancelling')`)).rows;
  const executorOf = async (runId: string) => (await getRun(catalog.pool, runId)).executor as Record<string, unknown>;

  describe('refusals, each with a clear JSON error and no run created', () => {
    it('405 for anything but POST (OPTIONS answers the CORS preflight)', async () => {
      const get = await invoke(null, { method: 'GET', token: await tokenFor('adminA') });
      assert.equal(get.status, 405);
      assert.equal(get.json.error.code, 'METHOD_NOT_ALLOWED');
      assert.equal(get.headers.get('allow'), 'POST, OPTIONS');
      const preflight = await invoke(null, { method: 'OPTIONS' });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/);
    });

    it('401 for a missing, malformed, forged, expired or misdirected token', async () => {
      const before = await runCount();
      const body = { targetId: ghTarget.id };
      const now = Math.floor(Date.now() / 1000);
      const valid = await tokenFor('adminA');
      const [head, payload] = valid.split('.');
      const cases: Array<[string, string | null, RegExp]> = [
        ['no Authorization header', null, /Bearer/],
        ['not a JWT', 'not-a-jwt', /not a JWT/],
        ['signed by a key the project does not have (same kid)', await tokenFor('adminA', stranger), /signature is invalid/],
        ['a payload changed after signing', `${head}.${Buffer.from(JSON.stringify(claimsFor('adminB'))).toString('base64url')}.${valid.split('.')[2]}`, /signature is invalid/],
        ['an unknown kid', await signJwt(stranger, claimsFor('adminA'), { kid: 'rotated-away' }), /No RS256 signing key with kid "rotated-away"/],
        ['alg none', `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`, /none are not accepted/],
        ['HS256 (the public key as an HMAC secret)', await signJwt(rsa, claimsFor('adminA'), { alg: 'HS256' }), /HS256 are not accepted/],
        ['ES256 header on an RSA-signed token', await signJwt(rsa, claimsFor('adminA'), { alg: 'ES256', kid: 'ec-1' }), /ES256 signature is not 64 bytes|signature is invalid/],
        ['expired', await tokenFor('adminA', rsa, { iat: now - 7200, exp: now - 3600 }), /expired/],
        ['another issuer', await tokenFor('adminA', rsa, { iss: 'https://evil.example/auth/v1' }), /issued by/],
        ['another audience', await tokenFor('adminA', rsa, { aud: 'anon' }), /not meant for "authenticated"/],
        ['no user', await tokenFor('adminA', rsa, { sub: '' }), /names no user/],
        ['a user id that is not a UUID', await tokenFor('adminA', rsa, { sub: 'service' }), /names no user/],
      ];
      for (const [what, token, message] of cases) {
        const answer = await invoke(body, { token });
        assert.equal(answer.status, 401, what);
        assert.equal(answer.json.error.code, 'UNAUTHORIZED', what);
        assert.match(answer.json.error.message, message, what);
        assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer/, what);
      }
      assert.equal(await runCount(), before);
    });

    it('400 for a body that is not {"targetId"} or {"target"}', async () => {
      const token = await tokenFor('adminA');
      for (const [what, rawBody] of [
        ['not JSON', '{target'],
        ['an array', '[]'],
        ['neither field', '{}'],
        ['both fields', JSON.stringify({ targetId: ghTarget.id, target: ghTarget.name })],
        ['an unknown field', JSON.stringify({ targetId: ghTarget.id, force: true })],
        ['a targetId that is no UUID', JSON.stringify({ targetId: "x' or 1=1 --" })],
        ['a target that is no name', JSON.stringify({ target: 'Robert"); drop table' })],
      ]) {
        const answer = await invoke(null, { token, rawBody });
        assert.equal(answer.status, 400, what);
        assert.equal(answer.json.error.code, 'INVALID_INPUT', what);
      }
    });

    it('404 for an unknown target, and for targets of organisations the caller is not in (no existence leak)', async () => {
      const before = await runCount();
      const unknown = await invoke({ targetId: crypto.randomUUID() }, { token: await tokenFor('adminA') });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json.error.code, 'TARGET_NOT_FOUND');
      for (const [user, targetId] of [
        ['adminB', ghTarget.id],
        ['outsider', ghTarget.id],
        ['adminA', fixture.targets.b],
        ['adminA', fixture.targets.none],
      ] as const) {
        const answer = await invoke({ targetId }, { token: await tokenFor(user) });
        assert.equal(answer.status, 404, `${user} → ${targetId}`);
      }
      assert.equal(await runCount(), before);
    });

    it('403 for a member of the organisation who is not its admin (checked under RLS, as the caller)', async () => {
      const before = await runCount();
      const answer = await invoke({ target: ghTarget.name }, { token: await tokenFor('memberA', ec), forwardedFor: '198.51.100.23, 10.0.0.1' });
      assert.equal(answer.status, 403);
      assert.equal(answer.json.error.code, 'FORBIDDEN');
      assert.match(answer.json.error.message, /Only admins/);
      assert.equal(await runCount(), before);
      const { items } = await listAudit(catalog.pool, { actor: fixture.users.memberA, limit: 1 });
      assert.deepEqual(
        items.map((entry) => [entry.action, entry.subject, entry.outcome, entry.errorCode, entry.actor.address, entry.actor.client]),
        [['run.trigger', ghTarget.name, 'refused', 'FORBIDDEN', '198.51.100.23', 'edge-function']],
      );
    });

    it('409 while a run of the target is active, queued ones included', async () => {
      const first = await invoke({ target: queuedTarget.name }, { token: await tokenFor('adminA', ec) });
      assert.equal(first.status, 202, JSON.stringify(first.json));
      assert.equal(first.json.run.status, 'queued');
      const second = await invoke({ targetId: queuedTarget.id }, { token: await tokenFor('adminA') });
      assert.equal(second.status, 409);
      assert.equal(second.json.error.code, 'TARGET_BUSY');
      assert.equal(second.json.runId, first.json.run.id);
    });
  });

  it('a target without an executor is queued for Backstop, with the trigger and the user recorded', async () => {
    const answer = await invoke({ targetId: queuedTarget.id }, { token: await tokenFor('adminA', ec) });
    assert.equal(answer.status, 202);
    const run = await getRun(catalog.pool, answer.json.run.id);
    assert.equal(run.status, 'queued');
    assert.equal(run.trigger, 'edge-function');
    const events = await listRunEvents(catalog.pool, run.id);
    assert.deepEqual(
      events.map((event) => event.kind),
      ['created'],
    );
    assert.match(events[0]!.message!, new RegExp(fixture.users.adminA));
    // The audit trail names the user; the entry is written by the statement that made the run.
    const audit = (await listAudit(catalog.pool, { action: 'run.trigger', actor: fixture.users.adminA, limit: 50 })).items.find((entry) => entry.details.runId === run.id);
    assert.ok(audit, 'the run is in the audit trail');
    assert.deepEqual(
      [audit.outcome, audit.subject, audit.actor.kind, 'id' in audit.actor ? audit.actor.id : null, audit.actor.client],
      ['succeeded', queuedTarget.name, 'user', fixture.users.adminA, 'edge-function'],
    );
    assert.equal(github.requests.filter((request) => request.body && JSON.stringify(request.body).includes(run.id)).length, 0);
  });

  describe('end to end: JWT → run row → dispatch → the job → a terminal status', () => {
    it('succeeds: 201 with the GitHub run, which the job (`backstop run`) takes to succeeded', async () => {
      const answer = await invoke({ targetId: ghTarget.id }, { token: await tokenFor('adminA') });
      assert.equal(answer.status, 201, JSON.stringify(answer.json));
      const runId = answer.json.run.id as string;
      assert.equal(typeof answer.json.run.github.workflowRunId, 'number');
      assert.match(answer.json.run.github.htmlUrl, /^https:\/\/github\.test\/acme\/infra\/actions\/runs\/\d+$/);
      const dispatch = github.requests.find((request) => request.path.endsWith('/dispatches') && JSON.stringify(request.body).includes(runId))!;
      assert.deepEqual(dispatch.body, { ref: 'main', inputs: { run_id: runId, target: ghTarget.name }, return_run_details: true });
      const stored = await executorOf(runId);
      assert.deepEqual(
        { kind: stored.kind, state: stored.state, workflowRunId: stored.workflowRunId, dispatcher: stored.dispatcher },
        { kind: 'github', state: 'dispatched', workflowRunId: answer.json.run.github.workflowRunId, dispatcher: 'edge:trigger-backup' },
      );

      await waitFor('run succeeded', async () => (await getRun(catalog.pool, runId)).status === 'succeeded', 60_000);
      await executor.tickOnce();
      const run = await getRun(catalog.pool, runId);
      assert.equal(run.status, 'succeeded');
      assert.equal(run.trigger, 'edge-function');
      assert.ok(run.artifact && run.artifact.files.length > 0);
      const kinds = (await listRunEvents(catalog.pool, runId)).map((event) => event.kind);
      assert.deepEqual(kinds.slice(0, 4), ['created', 'dispatching', 'dispatched', 'claimed']);
      assert.equal(kinds.at(-1), 'finished');
      // The admin sees the run and its events through RLS; the member of the organisation does not.
      const visible = await sessions.asCaller(claimsFor('adminA'), 'select status from backstop.runs where id = $1', [runId]);
      assert.deepEqual(visible, [{ status: 'succeeded' }]);
      assert.deepEqual(await sessions.asCaller(claimsFor('memberA'), 'select status from backstop.runs where id = $1', [runId]), []);
    });

    it("the job is killed (SIGKILL) mid-dump: the reaper times the run out, and GitHub's later failure changes nothing", async () => {
      jobLease = fastLeaseEnv;
      const lock = await holdTableLock(source.url, 'orders');
      try {
        const answer = await invoke({ targetId: ghTarget.id }, { token: await tokenFor('adminA', ec) });
        assert.equal(answer.status, 201);
        const runId = answer.json.run.id as string;
        await waitFor('dumping', async () => (await dumpSessions(runId)) > 0, 30_000);
        jobs.at(-1)!.child.kill('SIGKILL');
        await waitFor(
          'timed_out',
          async () => {
            await reapRuns(catalog.pool);
            return (await getRun(catalog.pool, runId)).status === 'timed_out';
          },
          20_000,
        );
        await executor.tickOnce();
        const run = await getRun(catalog.pool, runId);
        assert.equal(run.status, 'timed_out');
        assert.equal(run.error?.code, 'LEASE_EXPIRED');
      } finally {
        await lock.release();
      }
    });

    it('cancelled (`backstop cancel`): the runner stops, the run is cancelled, and the executor cancels the GitHub run', async () => {
      const lock = await holdTableLock(source.url, 'orders');
      try {
        const answer = await invoke({ targetId: ghTarget.id }, { token: await tokenFor('adminA') });
        const runId = answer.json.run.id as string;
        await waitFor('dumping', async () => (await dumpSessions(runId)) > 0, 30_000);
        const cancel = await runCli(['cancel', runId], env);
        assert.equal(cancel.code, 0, cancel.stderr);
        await executor.tickOnce();
        const sent = await executorOf(runId);
        assert.equal(sent.cancelSent, true);
        await waitFor('cancelled', async () => (await getRun(catalog.pool, runId)).status === 'cancelled', 30_000);
        assert.equal(github.requests.filter((request) => request.path.endsWith(`/runs/${sent.workflowRunId}/cancel`)).length, 1);
        assert.equal(github.runs.get(Number(sent.workflowRunId))!.conclusion, 'cancelled');
      } finally {
        await lock.release();
      }
    });

    it("a GitHub run that completes without the runner reporting is ended with GitHub's conclusion", async () => {
      job = 'none';
      const answer = await invoke({ targetId: ghTarget.id }, { token: await tokenFor('adminA') });
      const runId = answer.json.run.id as string;
      github.complete(answer.json.run.github.workflowRunId, 'failure');
      await executor.tickOnce();
      const run = await getRun(catalog.pool, runId);
      assert.equal(run.status, 'failed');
      assert.equal(run.error?.code, 'EXECUTOR_ENDED');
      assert.match(run.error!.message, /conclusion "failure"/);
    });

    it("a dispatch GitHub refuses: 502 with GitHub's message, and the run is already failed", async () => {
      github.queueDispatch('unprocessable');
      const answer = await invoke({ targetId: ghTarget.id }, { token: await tokenFor('adminA') });
      assert.equal(answer.status, 502);
      assert.equal(answer.json.error.code, 'DISPATCH_REFUSED');
      assert.match(answer.json.error.message, /GitHub refused \(422\): Workflow does not have 'workflow_dispatch' trigger/);
      const run = await getRun(catalog.pool, answer.json.runId);
      assert.equal(run.status, 'failed');
      assert.equal(run.error?.code, 'DISPATCH_REFUSED');
      assert.deepEqual(await nonTerminal(), []);
      const kinds = (await listRunEvents(catalog.pool, run.id)).map((event) => event.kind);
      assert.deepEqual(kinds, ['created', 'dispatching', 'executor_ended']);
    });

    it('a runner started with a wrong or stale run id is refused and changes nothing', async () => {
      const [finished] = (await catalog.pool.query<{ id: string }>(`select id from backstop.runs where status = 'succeeded' and target_id = $1 limit 1`, [ghTarget.id])).rows;
      assert.ok(finished, 'a succeeded run from the first test');
      const snapshot = async () =>
        (
          await catalog.pool.query(
            `select r.id, r.status, r.attempt, r.lease_id, r.finished_at, (select count(*) from backstop.run_events e where e.run_id = r.id) as events from backstop.runs r order by r.id`,
          )
        ).rows;
      const before = await snapshot();
      const unknown = await runCli(['run', crypto.randomUUID()], env);
      assert.equal(unknown.code, 4, unknown.stderr);
      assert.match(unknown.stderr, /No run with id/);
      const stale = await runCli(['run', finished.id], env);
      assert.equal(stale.code, 5, stale.stderr);
      assert.match(stale.stderr, /already finished as succeeded/);
      const garbage = await runCli(['run', 'run-42'], env);
      assert.equal(garbage.code, 4, garbage.stderr);
      assert.deepEqual(await snapshot(), before);
    });
  });
});
