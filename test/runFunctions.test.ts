import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listRunEvents } from '../src/db/runEvents.ts';
import { claimRunById, finalizeRun } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { enqueueScheduledDrill } from '../src/db/schedules.ts';
import { createTarget } from '../src/db/targets.ts';
import { createTriggerBackupHandler } from '../src/supabaseCatalog/triggerBackup.ts';
import { createJwtVerifier, remoteKeySet } from '../src/supabaseCatalog/verifyJwt.ts';
import { generateSigner, signJwt, startJwksServer, type JwksServer, type TestSigner } from './support/jwks.ts';
import { createTestCatalog } from './support/pg.ts';
import { asApiRole, createSupabaseCatalog, edgeSessions, seedOrganizations, type EdgeSessions, type OrgFixture, type SupabaseCatalog } from './support/supabaseCatalog.ts';

/**
 * Runs are made in one place: backstop.create_run (migration 011). A run the edge function
 * creates and one Backstop's catalog code creates from the same inputs are the same run, and
 * nothing else in src/ inserts runs.
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RUN_DEADLINE_MS = 3_600_000;

describe('one definition of a new run, for every client', () => {
  let catalog: SupabaseCatalog;
  let fixture: OrgFixture;
  let jwks: JwksServer;
  let signer: TestSigner;
  let sessions: EdgeSessions;

  before(async () => {
    catalog = await createSupabaseCatalog('sbrunfn');
    fixture = await seedOrganizations(catalog.url);
    signer = await generateSigner('RS256', 'rsa-1');
    jwks = await startJwksServer([signer.publicJwk]);
    sessions = edgeSessions(catalog.functionUrl);
  });

  after(async () => {
    await sessions?.close();
    await jwks?.close();
    await catalog?.close();
  });

  it('the edge function and the TypeScript catalog make the same run (every column but id and times) with the same events', async () => {
    const target = await createTarget(catalog.pool, {
      name: 'same-run',
      databaseUrl: 'postgres://backstop:secret@127.0.0.1:1/none',
      storeUrl: 'file:///nowhere',
      maxAttempts: 3,
    });
    await catalog.pool.query('update backstop.targets set organization_id = $1 where id = $2', [fixture.orgs.a, target.id]);
    const handler = createTriggerBackupHandler({
      verifyJwt: createJwtVerifier({ keySet: remoteKeySet(jwks.jwksUrl), issuer: `${jwks.supabaseUrl}/auth/v1`, audience: 'authenticated' }),
      asCaller: sessions.asCaller,
      asService: sessions.asService,
      github: null,
      runDeadlineMs: RUN_DEADLINE_MS,
    });
    const now = Math.floor(Date.now() / 1000);
    const token = await signJwt(signer, {
      iss: `${jwks.supabaseUrl}/auth/v1`,
      aud: 'authenticated',
      sub: fixture.users.adminA,
      role: 'authenticated',
      iat: now,
      exp: now + 3600,
    });
    const response = await handler(
      new Request('http://127.0.0.1/functions/v1/trigger-backup', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ targetId: target.id }),
      }),
    );
    const answer = (await response.json()) as { run: { id: string } };
    assert.equal(response.status, 202, JSON.stringify(answer));
    const edgeRunId = answer.run.id;

    // The same inputs through Backstop's own code: the edge function's trigger, on behalf of the same user.
    const catalogRun = await createRun(catalog.pool, { targetId: target.id, trigger: 'edge-function', runDeadlineMs: RUN_DEADLINE_MS, requestedBy: fixture.users.adminA });

    const row = async (runId: string) => {
      const { rows } = await catalog.pool.query<Record<string, unknown>>(
        `select to_jsonb(r) - 'id' - 'created_at' - 'deadline_at' as run,
                extract(epoch from r.deadline_at - r.created_at)::float8 as deadline_seconds
         from backstop.runs r where r.id = $1`,
        [runId],
      );
      return rows[0]!;
    };
    const events = async (runId: string) =>
      (await catalog.pool.query(`select attempt, kind, status, message, data from backstop.run_events where run_id = $1 order by id`, [runId])).rows;

    const fromEdge = await row(edgeRunId);
    const fromCatalog = await row(catalogRun.id);
    assert.deepEqual(fromCatalog, fromEdge);
    assert.equal(fromEdge.deadline_seconds, RUN_DEADLINE_MS / 1000);
    const edgeEvents = await events(edgeRunId);
    assert.deepEqual(await events(catalogRun.id), edgeEvents);
    assert.deepEqual(
      edgeEvents.map((event) => [event.kind, event.message]),
      [['created', `queued by edge-function for user ${fixture.users.adminA}`]],
    );
    // The rules, not just their agreement: the target's max_attempts, exclusive for a backup, queued.
    const run = fromEdge.run as Record<string, unknown>;
    assert.equal(run.max_attempts, 3);
    assert.equal(run.exclusive, true);
    assert.equal(run.status, 'queued');
    assert.equal(run.trigger, 'edge-function');
  });

  it('a signed-in admin cannot call the run functions directly (only the edge function, as backstop_service, makes their runs)', async () => {
    const claims = { sub: fixture.users.adminA, role: 'authenticated', aud: 'authenticated' };
    const before = Number((await catalog.pool.query('select count(*)::int as n from backstop.runs')).rows[0].n);
    for (const [what, sql, values] of [
      ['create_run', 'select * from backstop.create_run($1::uuid, $2::text, $3::float8)', [fixture.targets.a, 'attacker', 60_000]],
      ['claim_run', 'select * from backstop.claim_run($1::uuid, $2::float8, $3::text, $4::text[], $5::text[])', [fixture.runs.a, 60_000, 'attacker', ['queued'], ['running']]],
      ['record_imported_run', 'select * from backstop.record_imported_run(gen_random_uuid(), gen_random_uuid(), 1, now(), 1, $1::jsonb, $2::text)', ['{}', 'forged']],
    ] as const) {
      await assert.rejects(asApiRole(catalog.apiUrl, 'authenticated', claims, sql, [...values], { commit: true }), (error: { code?: string; message?: string }) => {
        assert.equal(error.code, '42501', `${what}: permission denied`);
        // Refused at the function, before its SECURITY INVOKER statements would be refused too.
        assert.match(error.message ?? '', new RegExp(`permission denied for function ${what}`));
        return true;
      });
    }
    assert.equal(Number((await catalog.pool.query('select count(*)::int as n from backstop.runs')).rows[0].n), before, 'no run was made');
  });

  it('no module in src/ inserts runs itself: only migration 011 does', async () => {
    const found: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (/insert\s+into\s+(backstop\s*\.\s*)?"?runs"?(\s|\()/i.test(await fs.readFile(full, 'utf8'))) found.push(path.relative(repoRoot, full));
      }
    };
    await walk(path.join(repoRoot, 'src'));
    assert.deepEqual(found, ['src/db/migrations/011_run_functions.sql']);
  });

  it('a scheduled drill is made by create_run too: a verify run of the newest backup, not exclusive, with its created event', async () => {
    const plain = await createTestCatalog();
    try {
      const target = await createTarget(plain.pool, {
        name: 'drilled',
        databaseUrl: 'postgres://backstop:secret@127.0.0.1:1/none',
        storeUrl: 'file:///nowhere',
        maxAttempts: 2,
      });
      const backup = await createRun(plain.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: RUN_DEADLINE_MS });
      const claimed = await claimRunById(plain.pool, backup.id, { leaseTtlMs: 60_000, claimedBy: 'test-runner' });
      await finalizeRun(plain.pool, {
        runId: backup.id,
        leaseId: claimed.leaseId,
        outcome: 'succeeded',
        artifact: {
          storeUrl: 'file:///nowhere',
          prefix: 'drilled/run/attempt-1/',
          manifest: { name: 'manifest.json', size: 10, sha256: 'a'.repeat(64) },
          files: [{ name: 'dump.pgcustom.zst', size: 100, sha256: 'b'.repeat(64) }],
        },
      });
      await plain.pool.query(`update backstop.targets set verification = '{"cron": "0 4 * * *"}'::jsonb where id = $1`, [target.id]);
      const slot = Date.parse('2030-01-01T04:00:00Z');
      const drill = await enqueueScheduledDrill(plain.pool, { targetId: target.id, slot, runDeadlineMs: RUN_DEADLINE_MS });
      assert.equal(drill.claimed, true);
      assert.ok(drill.runId, 'a drill was queued');
      const run = await getRun(plain.pool, drill.runId);
      assert.deepEqual(
        { kind: run.kind, subject: run.subjectRunId, status: run.status, trigger: run.trigger, maxAttempts: run.maxAttempts, attempt: run.attempt },
        { kind: 'verify', subject: backup.id, status: 'queued', trigger: 'schedule', maxAttempts: 2, attempt: 0 },
      );
      const { rows } = await plain.pool.query<{ exclusive: boolean }>('select exclusive from backstop.runs where id = $1', [drill.runId]);
      assert.equal(rows[0]!.exclusive, false);
      assert.deepEqual(
        (await listRunEvents(plain.pool, drill.runId)).map((event) => [event.kind, event.status, event.message]),
        [['created', 'queued', 'verification queued by the schedule for 2030-01-01T04:00:00.000Z']],
      );
      // The slot is settled: a second scheduler for the same slot queues nothing.
      assert.deepEqual(await enqueueScheduledDrill(plain.pool, { targetId: target.id, slot, runDeadlineMs: RUN_DEADLINE_MS }), {
        claimed: false,
        runId: null,
        subjectRunId: null,
      });
    } finally {
      await plain.close();
    }
  });
});
