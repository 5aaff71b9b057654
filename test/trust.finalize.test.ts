import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { artifactPrefix, type Manifest } from '../src/core/manifest.ts';
import { manifestBindsTo } from '../src/core/manifestBinding.ts';
import type { Artifact } from '../src/core/artifact.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { createRun, getRun, type RunRecord } from '../src/db/runRecords.ts';
import { createTarget, updateTargetPolicies, type TargetRecord } from '../src/db/targets.ts';
import { issueRunnerToken } from '../src/db/tokens.ts';
import { backupDatabase } from '../src/pipeline/backup.ts';
import { localStore } from '../src/storage/localStore.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, adminUrl, createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { filesUnder } from './support/store.ts';
import { waitFor } from './support/wait.ts';

/**
 * A runner token in hostile hands, against a real server: it claims its run and finalizes it
 * with an artifact descriptor of its own choosing. The server must decide where the artifact
 * is, read it back, refuse anything else (and end the attempt failed), and what acts on runs
 * later (prune, drills, restores) must never act on a location a runner chose.
 */

const GITHUB = { kind: 'github' as const, owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml', ref: 'main' };
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'timed_out']);

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Every file under a folder with its SHA-256. */
async function fingerprint(root: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const file of await filesUnder(root)) result[file] = sha256(await fs.readFile(path.join(root, file)));
  return result;
}

describe('a hostile runner token cannot make the server record or act on an artifact it did not write', { timeout: 600_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let victimDir: string;
  let api: TestServer;
  /** Backed up by the server's worker: a real, complete backup that attackers copy. */
  let targetB: TargetRecord;
  let backupB: RunRecord & { artifact: Artifact };
  /** GitHub targets: the worker never claims their backups, the attacker's runner token does. */
  let targetA: TargetRecord;
  let targetV: TargetRecord;
  let targetC: TargetRecord;

  const runOf = async (target: TargetRecord) => createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });

  /** Claims the run with its own runner token, as a CI job would. */
  const claim = async (run: RunRecord) => {
    const token = await issueRunnerToken(catalog.pool, run.id);
    const answer = await api.request('POST', `/api/v1/runs/${run.id}/claim`, { token, body: { claimedBy: 'attacker' } });
    assert.equal(answer.status, 200, answer.text);
    return { token, leaseId: answer.json.leaseId as string, run: answer.json.run as RunRecord, target: answer.json.target as { storeUrl: string } };
  };

  const finalize = (runId: string, token: string, leaseId: string, artifact: Artifact) =>
    api.request('POST', `/api/v1/runs/${runId}/finalize`, { token, body: { leaseId, outcome: 'succeeded', artifact } });

  /** What an honest runner writes for a claimed run: a real backup at the run's own prefix. */
  const honestBackup = (claimed: { run: RunRecord }) =>
    backupDatabase({
      runId: claimed.run.id,
      attempt: claimed.run.attempt,
      targetName: claimed.run.targetName,
      targetId: claimed.run.targetId,
      createdAt: claimed.run.createdAt,
      databaseUrl: source.url,
      store: localStore(storeDir),
      signal: new AbortController().signal,
    });

  /** The refusal: 422 ARTIFACT_REJECTED, and the run ended failed with the same reason and no artifact. */
  const assertRefused = async (runId: string, answer: { status: number; json: any; text: string }, saying: RegExp) => {
    assert.equal(answer.status, 422, answer.text);
    assert.equal(answer.json.error.code, 'ARTIFACT_REJECTED');
    assert.match(answer.json.error.message, saying);
    assert.match(answer.json.error.message, /trigger a new backup/, 'the refusal says what to do');
    const run = await getRun(catalog.pool, runId);
    assert.equal(run.status, 'failed', 'the run does not stay running');
    assert.equal(run.error?.code, 'ARTIFACT_REJECTED');
    assert.equal(run.error?.message, answer.json.error.message);
    assert.equal(run.artifact, null, 'nothing is recorded of the location the runner named');
    const finished = (await listRunEvents(catalog.pool, runId)).find((event) => event.kind === 'finished');
    assert.equal(finished?.status, 'failed');
    return run;
  };

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(300);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-store-'));
    victimDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-victim-'));
    await fs.mkdir(path.join(victimDir, 'precious', 'nested'), { recursive: true });
    await fs.writeFile(path.join(victimDir, 'precious', 'ledger.db'), randomBytes(50_000));
    await fs.writeFile(path.join(victimDir, 'precious', 'nested', 'notes.txt'), "not a backup, and not Backstop's to delete\n");
    api = await startTestServer({
      catalogUrl: catalog.url,
      worker: true,
      env: { BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_LEASE_TTL: '10', BACKSTOP_HEARTBEAT_INTERVAL: '1' },
    });
    const storeUrl = `file://${storeDir}`;
    targetB = await createTarget(catalog.pool, { name: 'trust-b', databaseUrl: source.url, storeUrl });
    targetA = await createTarget(catalog.pool, { name: 'trust-a', databaseUrl: source.url, storeUrl, executor: GITHUB });
    targetV = await createTarget(catalog.pool, { name: 'trust-v', databaseUrl: source.url, storeUrl, executor: GITHUB });
    targetC = await createTarget(catalog.pool, { name: 'trust-c', databaseUrl: source.url, storeUrl, executor: GITHUB });
    // B is backed up by the server's own worker: the SQL runner path through the same check.
    const queued = await runOf(targetB);
    const done = await waitFor(
      'B backed up by the worker',
      async () => {
        const run = await getRun(catalog.pool, queued.id);
        return TERMINAL.has(run.status) ? run : null;
      },
      120_000,
    );
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    backupB = done as RunRecord & { artifact: Artifact };
  });

  after(async () => {
    await api?.close();
    await catalog?.close();
    await source?.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
    await fs.rm(victimDir, { recursive: true, force: true });
  });

  it('(a) a forged storeUrl (file:///victim) is refused with 422, the run ends failed, and `backstop prune --grace-period 0` leaves the victim folder intact', async () => {
    const victimBefore = await fingerprint(victimDir);
    assert.equal(Object.keys(victimBefore).length, 2);
    // Retention on, so that a forged backup older than an honest one would be chosen for deletion.
    await updateTargetPolicies(catalog.pool, targetV.name, { retention: { keepLast: 1 } });

    // The attacker's run: nothing written, a descriptor pointing at the victim's folder.
    const forgedRun = await runOf(targetV);
    const forged = await claim(forgedRun);
    const victimFiles = await filesUnder(path.join(victimDir, 'precious'));
    const descriptor: Artifact = {
      storeUrl: `file://${victimDir}`,
      prefix: 'precious/',
      manifest: { name: 'manifest.json', size: 400, sha256: 'a'.repeat(64) },
      files: await Promise.all(
        victimFiles.map(async (name) => {
          const bytes = await fs.readFile(path.join(victimDir, 'precious', name));
          return { name, size: bytes.length, sha256: sha256(bytes) };
        }),
      ),
    };
    const answer = await finalize(forgedRun.id, forged.token, forged.leaseId, descriptor);
    await assertRefused(forgedRun.id, answer, new RegExp(`names the store file://${victimDir}, but the target stores into file://${storeDir}`));
    // Repeating the report gets the refusal again, not a success and not a vague lost lease.
    const again = await finalize(forgedRun.id, forged.token, forged.leaseId, descriptor);
    assert.equal(again.status, 422);
    assert.equal(again.json.error.code, 'ARTIFACT_REJECTED');
    assert.equal((await getRun(catalog.pool, forgedRun.id)).status, 'failed');

    // A newer honest backup of the same target, reported truthfully: accepted.
    const honestRun = await runOf(targetV);
    const honest = await claim(honestRun);
    const artifact = await honestBackup(honest);
    const accepted = await finalize(honestRun.id, honest.token, honest.leaseId, artifact);
    assert.equal(accepted.status, 200, accepted.text);
    assert.equal(accepted.json.status, 'succeeded');
    assert.deepEqual(accepted.json.artifact, artifact);

    // The operator prunes, with no grace period, every target.
    const prune = await runCli(['prune', '--grace-period', '0', '--json'], { BACKSTOP_DATABASE_URL: catalog.url });
    assert.equal(prune.code, 0, prune.stderr + prune.stdout);
    assert.deepEqual(await fingerprint(victimDir), victimBefore, 'every file of the victim folder is still there, unchanged');
    const stillThere = await filesUnder(storeDir);
    assert.ok(
      stillThere.some((file) => file.startsWith(artifact.prefix)),
      'the honest backup is kept',
    );
    assert.ok(
      stillThere.some((file) => file.startsWith(backupB.artifact.prefix)),
      "target B's backup is kept",
    );
  });

  it("(b) a run of target A reporting target B's real, complete artifact is refused, as is a copy of B's files under A's own prefix", async () => {
    // B's descriptor, verbatim: the same store, B's prefix.
    const runA = await runOf(targetA);
    const claimedA = await claim(runA);
    const answer = await finalize(runA.id, claimedA.token, claimedA.leaseId, backupB.artifact);
    await assertRefused(runA.id, answer, new RegExp(`names the prefix ${backupB.artifact.prefix}, not trust-a/`));

    // B's files copied under A's expected prefix and reported there: the manifest is B's.
    const runA2 = await runOf(targetA);
    const claimedA2 = await claim(runA2);
    const prefixA2 = artifactPrefix(targetA.name, claimedA2.run.createdAt, runA2.id, claimedA2.run.attempt);
    await fs.cp(path.join(storeDir, backupB.artifact.prefix), path.join(storeDir, prefixA2), { recursive: true });
    const copied = await finalize(runA2.id, claimedA2.token, claimedA2.leaseId, { ...backupB.artifact, prefix: prefixA2 });
    await assertRefused(runA2.id, copied, new RegExp(`belongs to run ${backupB.id}, not to run ${runA2.id}`));
    assert.equal((await getRun(catalog.pool, backupB.id)).status, 'succeeded', "B's own backup is untouched");
  });

  it("(b) a catalog row of target A that points at B's artifact (an old or altered catalog): its drill fails, never succeeded, and restores refuse it", async () => {
    const forgedId = randomUUID();
    await catalog.pool.query(
      `insert into backstop.runs (id, target_id, status, trigger, attempt, deadline_at, created_at, started_at, finished_at, artifact)
       values ($1, $2, 'succeeded', 'test', 1, now() + interval '1 day', now(), now(), now(), $3::jsonb)`,
      [forgedId, targetA.id, JSON.stringify(backupB.artifact)],
    );
    const queued = await api.request('POST', `/api/v1/runs/${forgedId}/verify`, { token: api.tokens.operator });
    assert.equal(queued.status, 201, queued.text);
    const drill = await waitFor(
      'the drill ends',
      async () => {
        const run = await getRun(catalog.pool, queued.json.id);
        return TERMINAL.has(run.status) ? run : null;
      },
      120_000,
    );
    assert.notEqual(drill.status, 'succeeded');
    assert.equal(drill.status, 'failed');
    assert.equal(drill.error?.code, 'ARTIFACT_REJECTED');
    assert.match(drill.error!.message, new RegExp(`belongs to run ${backupB.id}, not to run ${forgedId}`));
    const subject = await getRun(catalog.pool, forgedId);
    assert.equal(subject.verification?.status, 'failed', 'the backup is recorded as not verified');

    // The API restore (an admin's: operators restore only to allow-listed servers) refuses it before anything reaches the destination.
    const destination = await createTestDatabase('dest');
    try {
      const restore = await api.request('POST', `/api/v1/runs/${forgedId}/restore`, { token: api.tokens.admin, body: { databaseUrl: destination.url, privilegedRole: 'postgres' } });
      assert.equal(restore.status, 202, restore.text);
      const failed = await waitFor('restore_failed', async () =>
        (await listRunEvents(catalog.pool, forgedId)).find((event) => event.kind === 'restore_failed' || event.kind === 'restored'),
      );
      assert.equal(failed.kind, 'restore_failed');
      assert.equal(failed.data?.code, 'ARTIFACT_REJECTED');
      // The CLI restore by run id: the same refusal, with exit code 11.
      const cli = await runCli(['restore', forgedId, '--to', destination.url], { BACKSTOP_DATABASE_URL: catalog.url });
      assert.equal(cli.code, 11, cli.stderr);
      assert.match(cli.stderr, /ARTIFACT_REJECTED|does not point at that backup/);
      const tables = await adminQuery<{ count: number }>(
        `select count(*)::int as count from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`,
        [],
        destination.url,
      );
      assert.equal(tables[0]!.count, 0, 'nothing was restored');
    } finally {
      await destination.drop();
    }
  });

  it('(c) forged manifest digest, forged file size and digest, and a file altered in the store: each refused; the honest report is accepted', async () => {
    const cases: Array<{ forge: (artifact: Artifact) => Promise<Artifact> | Artifact; saying: RegExp }> = [
      {
        forge: (artifact) => ({ ...artifact, manifest: { ...artifact.manifest, sha256: 'f'.repeat(64) } }),
        saying: /the manifest in the store \(\d+ bytes, SHA-256 [0-9a-f]{64}\) is not the one reported/,
      },
      {
        forge: (artifact) => ({ ...artifact, manifest: { ...artifact.manifest, size: artifact.manifest.size + 1 } }),
        saying: /is not the one reported/,
      },
      {
        forge: (artifact) => ({ ...artifact, files: artifact.files.map((file) => ({ ...file, size: file.size + 1000, sha256: '0'.repeat(64) })) }),
        saying: /dump\.pgcustom\.zst is reported as \d+ bytes with SHA-256 0{64}, the manifest says/,
      },
      {
        // The runner reports honestly what the manifest says, but the stored file is not it.
        forge: async (artifact) => {
          await fs.appendFile(path.join(storeDir, artifact.prefix, artifact.files[0]!.name), 'tampered');
          return artifact;
        },
        saying: /dump\.pgcustom\.zst is \d+ bytes in the store, the manifest says \d+/,
      },
    ];
    for (const { forge, saying } of cases) {
      const run = await runOf(targetC);
      const claimed = await claim(run);
      const artifact = await honestBackup(claimed);
      const answer = await finalize(run.id, claimed.token, claimed.leaseId, await forge(artifact));
      await assertRefused(run.id, answer, saying);
    }
    const run = await runOf(targetC);
    const claimed = await claim(run);
    const artifact = await honestBackup(claimed);
    const manifest = JSON.parse(await fs.readFile(path.join(storeDir, artifact.prefix, 'manifest.json'), 'utf8')) as Manifest;
    assert.equal(manifest.targetId, targetC.id, 'the manifest records its target by id');
    const accepted = await finalize(run.id, claimed.token, claimed.leaseId, artifact);
    assert.equal(accepted.status, 200, accepted.text);
    assert.equal(accepted.json.status, 'succeeded');
  });

  it('`backstop import` refuses a manifest that is not at the prefix it implies, and one whose target id belongs to another target of that name', async () => {
    const copyStore = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-import-'));
    const fresh = await createTestCatalog();
    try {
      // B's backup where it belongs, and a copy of it under another run's folder.
      await fs.cp(path.join(storeDir, backupB.artifact.prefix), path.join(copyStore, backupB.artifact.prefix), { recursive: true });
      const misplaced = backupB.artifact.prefix.replace(backupB.id, randomUUID());
      await fs.cp(path.join(storeDir, backupB.artifact.prefix), path.join(copyStore, misplaced), { recursive: true });
      // The fresh catalog has another target named like B: deleted and created again.
      await createTarget(fresh.pool, { name: targetB.name, databaseUrl: source.url, storeUrl: `file://${copyStore}` });
      const imported = await runCli(['import', `file://${copyStore}`, '--json'], { BACKSTOP_DATABASE_URL: fresh.url });
      assert.equal(imported.code, 0, imported.stderr);
      const outcome = JSON.parse(imported.stdout);
      assert.deepEqual(outcome.imported, []);
      assert.equal(outcome.invalid.length, 1, imported.stdout);
      assert.equal(outcome.invalid[0].prefix, misplaced);
      assert.match(outcome.invalid[0].reason, /not imported: the manifest sits at .* but its run, attempt, target and date place it at/);
      assert.equal(outcome.skipped.length, 1, imported.stdout);
      assert.match(outcome.skipped[0].reason, /is not the target this backup was taken of/);

      // In a catalog without that name, the backup comes back under its own target id, where it is restorable by run id.
      const empty = await createTestCatalog();
      try {
        const again = JSON.parse((await runCli(['import', `file://${copyStore}`, '--json'], { BACKSTOP_DATABASE_URL: empty.url })).stdout);
        assert.equal(again.imported.length, 1);
        const run = await getRun(empty.pool, backupB.id);
        assert.equal(run.targetId, targetB.id);
      } finally {
        await empty.close();
      }
    } finally {
      await fresh.close();
      await fs.rm(copyStore, { recursive: true, force: true });
    }
  });
});

describe('manifestBindsTo', () => {
  const runId = randomUUID();
  const targetId = randomUUID();
  const createdAt = '2026-11-14T10:00:00.000Z';
  const manifest = (extra: Partial<Manifest> = {}): Manifest =>
    ({
      runId,
      attempt: 2,
      target: 'app',
      targetId,
      createdAt,
      files: [{ name: 'dump.pgcustom.zst', role: 'dump', format: 'pg_dump-custom', size: 1, sha256: '0'.repeat(64), uncompressedSize: 1 }],
      ...extra,
    }) as Manifest;
  const prefix = artifactPrefix('app', createdAt, runId, 2);
  const expected = { runId, attempt: 2, targetName: 'app', targetId, prefix };

  it('binds a manifest to its own run, attempt, target and prefix, and to nothing else', () => {
    assert.deepEqual(manifestBindsTo(manifest(), expected), { bound: true });
    assert.match(String((manifestBindsTo(manifest(), { ...expected, runId: randomUUID() }) as { reason: string }).reason), /belongs to run/);
    assert.match(String((manifestBindsTo(manifest(), { ...expected, attempt: 1 }) as { reason: string }).reason), /attempt 2/);
    assert.match(String((manifestBindsTo(manifest(), { ...expected, prefix: `other/${prefix}` }) as { reason: string }).reason), /place it at/);
    // Same name, another target (deleted and created again): refused. Renamed target, same id: bound.
    assert.equal(manifestBindsTo(manifest(), { ...expected, targetId: randomUUID() }).bound, false);
    assert.equal(manifestBindsTo(manifest(), { ...expected, targetName: 'renamed' }).bound, true);
    // An older manifest without a target id is bound by name.
    assert.equal(manifestBindsTo(manifest({ targetId: undefined }), expected).bound, true);
    assert.equal(manifestBindsTo(manifest({ targetId: undefined }), { ...expected, targetName: 'other' }).bound, false);
  });

  it('refuses file names that leave the prefix', () => {
    for (const name of ['../other/dump', '/etc/passwd', 'a//b', './x', 'manifest.json', 'storage/../../x']) {
      const files = [{ ...manifest().files[0]!, name }];
      assert.equal(manifestBindsTo(manifest({ files }), expected).bound, false, name);
    }
    const files = [manifest().files[0]!, manifest().files[0]!];
    assert.match(String((manifestBindsTo(manifest({ files }), expected) as { reason: string }).reason), /twice/);
  });
});
