import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../src/core/config.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { claimRunById, finalizeRun } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { performDrill } from '../src/runner/performDrill.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, adminUrl, createSampleDatabase, createTestCatalog, createTestDatabase, tableFingerprints, type TestCatalog, type TestDatabase } from './support/pg.ts';

describe('restore you can trust: drills, damaged artifacts, catalog-free restore', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  const drops: Array<() => Promise<void>> = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(1500);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-verify-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres' };
  });
  after(async () => {
    for (const drop of drops) await drop();
    await source.drop();
    await catalog.close();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  const backup = async (target: string) => {
    const result = await runCli(['backup', source.url, '--target', target, '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as { id: string; artifact: { prefix: string; files: Array<{ name: string }> } };
  };
  const fresh = async (prefix: string) => {
    const database = await createTestDatabase(prefix);
    drops.push(database.drop);
    return database;
  };
  const scratchDatabases = async () => (await adminQuery<{ datname: string }>(`select datname from pg_database where datname like 'backstop_verify_%'`)).map((row) => row.datname);

  it('a drill restores into a scratch database, compares every table, records the result, drops the scratch', async () => {
    const run = await backup('drilled');
    const verify = await runCli(['verify', run.id, '--json'], env);
    assert.equal(verify.code, 0, verify.stderr);
    const drill = JSON.parse(verify.stdout);
    assert.equal(drill.kind, 'verify');
    assert.equal(drill.subjectRunId, run.id);
    assert.equal(drill.status, 'succeeded');
    const subject = await getRun(catalog.pool, run.id);
    assert.equal(subject.verification?.status, 'passed');
    assert.equal(subject.verification?.tables, 3);
    assert.deepEqual(await scratchDatabases(), []);
    const kinds = (await listRunEvents(catalog.pool, drill.id)).map((event) => event.kind);
    assert.deepEqual(kinds, ['created', 'claimed', 'verify_started', 'verify_digests_ok', 'verify_passed', 'finished']);
  });

  it('one flipped byte: verify fails on the checksum before pg_restore runs, and restore refuses it', async () => {
    const run = await backup('flipped');
    const file = path.join(storeDir, run.artifact.prefix, run.artifact.files[0]!.name);
    const bytes = await fs.readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await fs.writeFile(file, bytes);

    const verify = await runCli(['verify', run.id, '--json'], env);
    assert.equal(verify.code, 11, verify.stderr);
    const drill = JSON.parse(verify.stdout);
    assert.equal(drill.status, 'failed');
    assert.equal(drill.error.code, 'ARTIFACT_CORRUPT');
    assert.match(drill.error.message, /Checksum mismatch/);
    const kinds = (await listRunEvents(catalog.pool, drill.id)).map((event) => event.kind);
    assert.ok(kinds.includes('verify_digest_failed'));
    assert.ok(!kinds.includes('verify_digests_ok'), 'nothing was restored');
    assert.equal((await getRun(catalog.pool, run.id)).verification?.status, 'failed');

    const target = await fresh('flipped_restore');
    const restore = await runCli(['restore', run.id, '--to', target.url], env);
    assert.equal(restore.code, 11, restore.stderr);
    assert.match(restore.stderr, /Checksum mismatch/);
    assert.deepEqual(await tableFingerprints(target.url), {});
  });

  it('a drill that finds a row-count mismatch is recorded as failed, naming the table', async () => {
    const run = await backup('tampered');
    const drillRun = await createRun(catalog.pool, {
      targetId: (await getRun(catalog.pool, run.id)).targetId,
      trigger: 'test',
      runDeadlineMs: 600_000,
      kind: 'verify',
      subjectRunId: run.id,
    });
    const claimed = await claimRunById(catalog.pool, drillRun.id, { leaseTtlMs: 60_000, claimedBy: 'test' });
    const config = { ...loadConfig(env, process.cwd()) };
    // This drill's own scratch database: other test files' drills share the server.
    let scratchName = '';
    const result = await performDrill({ db: catalog.pool, config, log: pino({ level: 'silent' }) }, claimed, {
      signal: new AbortController().signal,
      onEvent: () => {},
      afterRestore: async (scratchUrl) => {
        scratchName = new URL(scratchUrl).pathname.slice(1);
        await adminQuery('delete from orders where id in (select id from orders limit 7)', [], scratchUrl);
      },
    });
    assert.equal(result.outcome, 'failed');
    assert.equal(result.error?.code, 'VERIFY_MISMATCH');
    assert.match(result.error!.message, /public\.orders: 1493 rows restored, 1500 at dump time/);
    const finished = await finalizeRun(catalog.pool, { runId: claimed.id, leaseId: claimed.leaseId, outcome: result.outcome, error: result.error });
    assert.equal(finished.status, 'failed');
    const subject = await getRun(catalog.pool, run.id);
    assert.equal(subject.verification?.status, 'failed');
    assert.deepEqual(
      (subject.verification?.mismatches as Array<{ table: string }> | undefined)?.map((m) => m.table),
      ['public.orders'],
    );
    assert.match(scratchName, /^backstop_verify_/);
    assert.ok(!(await scratchDatabases()).includes(scratchName), `the scratch database ${scratchName} is dropped`);
  });

  it('with checksums recorded at dump time, a drill catches changed content with the same row count', async () => {
    const target = await createTarget(catalog.pool, { name: 'checksummed', databaseUrl: source.url, storeUrl: `file://${storeDir}`, options: { checksums: true } });
    const queued = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000 });
    const ran = await runCli(['run', queued.id], env);
    assert.equal(ran.code, 0, ran.stderr);
    const manifest = JSON.parse(await fs.readFile(path.join(storeDir, (await getRun(catalog.pool, queued.id)).artifact!.prefix, 'manifest.json'), 'utf8'));
    assert.ok(manifest.tables.every((table: { checksum?: string }) => /^-?\d+$/.test(table.checksum ?? '')));

    const verify = await runCli(['verify', queued.id, '--checksums'], env);
    assert.equal(verify.code, 0, verify.stderr);

    const drillRun = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 600_000, kind: 'verify', subjectRunId: queued.id });
    const claimed = await claimRunById(catalog.pool, drillRun.id, { leaseTtlMs: 60_000, claimedBy: 'test' });
    const result = await performDrill({ db: catalog.pool, config: loadConfig(env, process.cwd()), log: pino({ level: 'silent' }) }, claimed, {
      signal: new AbortController().signal,
      onEvent: () => {},
      checksums: true,
      afterRestore: async (scratchUrl) => {
        await adminQuery(`update audit.log set message = 'rewritten' where id = 3`, [], scratchUrl);
      },
    });
    assert.equal(result.error?.code, 'VERIFY_MISMATCH');
    assert.match(result.error!.message, /audit\.log: content checksum differs/);

    const noChecksums = await backup('plain-no-checksums');
    const refused = await runCli(['verify', noChecksums.id, '--checksums'], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /recorded no per-table checksums/);
  });

  it('restores one schema, and in parallel with --jobs', async () => {
    const run = await backup('partial');
    const audit = await fresh('audit_only');
    const partial = await runCli(['restore', run.id, '--to', audit.url, '--schema', 'audit', '--json'], env);
    assert.equal(partial.code, 0, partial.stderr);
    assert.equal(JSON.parse(partial.stdout).tablesChecked, 1);
    assert.deepEqual(Object.keys(await tableFingerprints(audit.url)), ['audit.log']);

    const parallel = await fresh('parallel');
    const jobs = await runCli(['restore', run.id, '--to', parallel.url, '--jobs', '2'], env);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.deepEqual(await tableFingerprints(parallel.url), await tableFingerprints(source.url));
  });

  it('the catalog deleted: import from the store brings the backups back; restore from a manifest URL needs no catalog', async () => {
    const run = await backup('imported');
    const lostCatalog = await createTestCatalog();
    try {
      const importEnv = { ...env, BACKSTOP_DATABASE_URL: lostCatalog.url };
      const imported = await runCli(['import', storeDir, '--json'], importEnv);
      assert.equal(imported.code, 0, imported.stderr);
      const outcome = JSON.parse(imported.stdout);
      assert.ok(outcome.imported.some((item: { runId: string }) => item.runId === run.id));
      const again = JSON.parse((await runCli(['import', storeDir, '--json'], importEnv)).stdout);
      assert.equal(again.imported.length, 0);
      assert.ok(again.skipped.every((item: { reason: string }) => item.reason === 'already in the catalog'));

      const listed = JSON.parse((await runCli(['runs', '--target', 'imported', '--json'], importEnv)).stdout);
      assert.deepEqual(
        listed.map((r: { id: string; status: string }) => [r.id, r.status]),
        [[run.id, 'succeeded']],
      );
      const viaImport = await fresh('via_import');
      const restored = await runCli(['restore', run.id, '--to', viaImport.url], importEnv);
      assert.equal(restored.code, 0, restored.stderr);
      assert.deepEqual(await tableFingerprints(viaImport.url), await tableFingerprints(source.url));
    } finally {
      await lostCatalog.close();
    }

    // No catalog at all: a catalog URL that refuses connections proves it is never opened.
    const noCatalogEnv = { ...env, BACKSTOP_DATABASE_URL: 'postgres://nobody:x@127.0.0.1:1/none' };
    const target = await fresh('from_manifest');
    const manifestUrl = `file://${path.join(storeDir, run.artifact.prefix, 'manifest.json')}`;
    const restored = await runCli(['restore', manifestUrl, '--to', target.url], noCatalogEnv);
    assert.equal(restored.code, 0, restored.stderr);
    assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
  });
});
