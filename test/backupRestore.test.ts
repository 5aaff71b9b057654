import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from './support/cli.ts';
import { createSampleDatabase, createTestCatalog, createTestDatabase, schemaOf, tableFingerprints, type TestCatalog, type TestDatabase } from './support/pg.ts';

describe('backup and restore through the CLI', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(3000);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-store-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
  });
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await source.drop();
    await catalog.close();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('restores identical schema and rows into a fresh database', async () => {
    const backup = await runCli(['backup', source.url, '--json'], env);
    assert.equal(backup.code, 0, backup.stderr);
    const run = JSON.parse(backup.stdout);
    assert.equal(run.status, 'succeeded');
    assert.equal(run.error, null);
    assert.equal(run.target, source.name);
    assert.equal(run.attempt, 1);
    assert.ok(run.artifact.files.length === 1 && /^[0-9a-f]{64}$/.test(run.artifact.files[0].sha256));

    // The artifact on disk: the dump and the manifest, nothing partial.
    const files = await fs.readdir(path.join(storeDir, run.artifact.prefix));
    assert.deepEqual(files.sort(), ['dump.pgcustom.zst', 'manifest.json']);
    const manifest = JSON.parse(await fs.readFile(path.join(storeDir, run.artifact.prefix, 'manifest.json'), 'utf8'));
    assert.equal(manifest.formatVersion, 1);
    // The row counts were read in the very snapshot pg_dump dumped.
    assert.equal(manifest.pgDump.snapshot, true);
    assert.ok(manifest.pgDump.options.some((option: string) => option.startsWith('--snapshot=')));
    assert.deepEqual(
      manifest.tables.map((t: { schema: string; name: string; rows: number }) => `${t.schema}.${t.name}=${t.rows}`),
      ['audit.log=50', 'public.customers=200', 'public.orders=3000'],
    );

    const target = await createTestDatabase('restored');
    cleanups.push(target.drop);
    const restore = await runCli(['restore', run.id, '--to', target.url, '--json'], env);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(JSON.parse(restore.stdout).tablesChecked, 3);

    assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
    assert.equal(await schemaOf(target.url), await schemaOf(source.url));
  });

  it('refuses to restore over a non-empty database without --clean, and restores with it', async () => {
    const backup = await runCli(['backup', source.url, '--json'], env);
    const run = JSON.parse(backup.stdout);
    const target = await createTestDatabase('occupied');
    cleanups.push(target.drop);
    const { adminQuery } = await import('./support/pg.ts');
    await adminQuery('create table orders (id int); insert into orders values (1)', [], target.url);

    const refused = await runCli(['restore', run.id, '--to', target.url], env);
    assert.equal(refused.code, 5);
    assert.match(refused.stderr, /RESTORE_TARGET_NOT_EMPTY/);
    assert.match(refused.stderr, /--clean/);
    assert.deepEqual(await adminQuery('select * from orders', [], target.url), [{ id: 1 }]);

    const cleaned = await runCli(['restore', run.id, '--to', target.url, '--clean'], env);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
  });

  it('compresses with gzip when asked, and restores it', async () => {
    const backup = await runCli(['backup', source.url, '--target', 'gzipped', '--compression', 'gzip:6', '--json'], env);
    assert.equal(backup.code, 0, backup.stderr);
    const run = JSON.parse(backup.stdout);
    assert.deepEqual(
      run.artifact.files.map((file: { name: string }) => file.name),
      ['dump.pgcustom.gz'],
    );
    const manifest = JSON.parse(await fs.readFile(path.join(storeDir, run.artifact.prefix, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest.compression, { algorithm: 'gzip', level: 6 });
    const target = await createTestDatabase('gunzipped');
    cleanups.push(target.drop);
    const restore = await runCli(['restore', run.id, '--to', target.url], env);
    assert.equal(restore.code, 0, restore.stderr);
    assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
  });

  it('lists runs and shows one with its events, as JSON', async () => {
    const list = await runCli(['runs', '--target', source.name, '--json'], env);
    const unknown = await runCli(['runs', '--target', 'no-such-target'], env);
    assert.equal(unknown.code, 4);
    assert.equal(list.code, 0, list.stderr);
    const runs = JSON.parse(list.stdout);
    assert.ok(runs.length >= 1);
    const shown = await runCli(['runs', 'show', runs[0].id, '--json'], env);
    const detail = JSON.parse(shown.stdout);
    assert.deepEqual(
      detail.events.map((event: { kind: string }) => event.kind),
      ['created', 'claimed', 'dump_started', 'dump_stored', 'finished', 'restored'],
    );
    const targets = await runCli(['target', 'list', '--json'], env);
    assert.equal(targets.code, 0);
    // The database URL (and so its password) is a secret: never printed.
    assert.ok(!targets.stdout.includes(source.url.split('@')[0]!.split(':').pop()!));
    assert.ok(!shown.stdout.includes('postgres://'));
  });
});
