import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { appendRunEvent, listRunEvents } from '../src/db/runEvents.ts';
import { reapRuns } from '../src/db/runLeases.ts';
import { getRun } from '../src/db/runRecords.ts';
import { discoverPgTools } from '../src/pgtools/findPgTools.ts';
import { generateIdentity } from '../src/pipeline/age.ts';
import { runCli, startCli } from './support/cli.ts';
import {
  adminQuery,
  createSampleDatabase,
  createTestCatalog,
  createTestDatabase,
  dumpSessions,
  holdTableLock,
  tableFingerprints,
  type TestCatalog,
  type TestDatabase,
} from './support/pg.ts';
import { startS3rver, type S3rverHandle } from './support/s3rver.ts';
import { filesUnder } from './support/store.ts';
import { waitFor } from './support/wait.ts';

const run = promisify(execFile);

describe('artifacts: encryption, S3, version matching', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let workDir: string;
  let env: Record<string, string>;
  const drops: Array<() => Promise<void>> = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(1000);
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-artifacts-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${path.join(workDir, 'store')}` };
  });
  after(async () => {
    for (const drop of drops) await drop();
    await source.drop();
    await catalog.close();
    await fs.rm(workDir, { recursive: true, force: true });
  });

  const freshDatabase = async (prefix: string) => {
    const database = await createTestDatabase(prefix);
    drops.push(database.drop);
    return database;
  };

  describe('age encryption', () => {
    let identityFile: string;
    let recipient: string;
    let runId: string;
    let prefix: string;

    before(async () => {
      identityFile = path.join(workDir, 'key.txt');
      const keygen = await runCli(['keygen', '-o', identityFile], env);
      assert.equal(keygen.code, 0, keygen.stderr);
      recipient = keygen.stdout.trim();
      assert.match(recipient, /^age1[0-9a-z]{58}$/);
      const backup = await runCli(['backup', source.url, '--target', 'encrypted', '--encrypt-to', recipient, '--json'], env);
      assert.equal(backup.code, 0, backup.stderr);
      const result = JSON.parse(backup.stdout);
      runId = result.id;
      prefix = path.join(workDir, 'store', result.artifact.prefix);
    });

    it('writes an age file and a manifest naming only the public recipient', async () => {
      const files = await fs.readdir(prefix);
      assert.deepEqual(files.sort(), ['dump.pgcustom.zst.age', 'manifest.json']);
      const head = (await fs.readFile(path.join(prefix, 'dump.pgcustom.zst.age'))).subarray(0, 22).toString();
      assert.equal(head, 'age-encryption.org/v1\n');
      const manifest = await fs.readFile(path.join(prefix, 'manifest.json'), 'utf8');
      assert.deepEqual(JSON.parse(manifest).encryption, { algorithm: 'age', recipients: [recipient] });
      const secret = (await fs.readFile(identityFile, 'utf8')).match(/AGE-SECRET-KEY-1\S+/)![0];
      assert.ok(!manifest.includes(secret));
    });

    it('is restorable with standard tools alone: age -d | zstd -d | pg_restore', async () => {
      const target = await freshDatabase('plain_tools');
      const pipelineScript = `age -d -i "$1" "$2" | zstd -d | pg_restore --exit-on-error --single-transaction --dbname="$3"`;
      await run('bash', ['-o', 'pipefail', '-c', pipelineScript, 'restore', identityFile, path.join(prefix, 'dump.pgcustom.zst.age'), target.url]);
      assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
    });

    it('restores with --identity, and refuses a missing or wrong identity before writing anything', async () => {
      const target = await freshDatabase('with_identity');
      const missing = await runCli(['restore', runId, '--to', target.url], env);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /encrypted with age .*--identity FILE/);

      const wrongFile = path.join(workDir, 'wrong.txt');
      await fs.writeFile(wrongFile, `${generateIdentity().identity}\n`);
      const wrong = await runCli(['restore', runId, '--to', target.url, '--identity', wrongFile], env);
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /None of the given identities can decrypt/);
      assert.deepEqual(await tableFingerprints(target.url), {});

      const restored = await runCli(['restore', runId, '--to', target.url, '--identity', identityFile], env);
      assert.equal(restored.code, 0, restored.stderr);
      assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
    });

    it('verifies with --identity, and refuses a drill without one before recording it', async () => {
      const countDrills = async () => (await catalog.pool.query<{ n: number }>(`select count(*)::int as n from backstop.runs where kind = 'verify'`)).rows[0]!.n;
      const before = await countDrills();
      const missing = await runCli(['verify', runId], env);
      assert.equal(missing.code, 2, missing.stderr);
      assert.match(missing.stderr, /IDENTITY_REQUIRED/);
      assert.match(missing.stderr, /--identity FILE/);
      assert.equal(await countDrills(), before, 'a drill without an identity was recorded');

      const drill = await runCli(['verify', runId, '--identity', identityFile, '--json'], env);
      assert.equal(drill.code, 0, drill.stderr);
      assert.equal(JSON.parse(drill.stdout).status, 'succeeded');
    });

    it('refuses an invalid recipient with a clear message', async () => {
      const bad = await runCli(['backup', source.url, '--target', 'bad-recipient', '--encrypt-to', 'age1notakey'], env);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /recipient/i);
    });
  });

  describe('S3 (s3rver)', () => {
    let s3: S3rverHandle;
    let big: TestDatabase;
    let s3env: Record<string, string>;

    before(async () => {
      s3 = await startS3rver();
      big = await createTestDatabase('big');
      drops.push(big.drop);
      // About 8 MiB of incompressible bytes: the compressed dump spans two 5 MiB parts.
      await adminQuery(
        `create table blobs (id int primary key, data bytea);
         insert into blobs select g, (select decode(string_agg(md5(random()::text || g || s), ''), 'hex') from generate_series(1, 64) s)
         from generate_series(1, 8192) g;
         create table orders (id int primary key, note text);
         insert into orders select g, 'order ' || g from generate_series(1, 1000) g;`,
        [],
        big.url,
      );
      s3env = { ...env, ...s3.env };
    });
    after(async () => {
      await s3?.stop();
    });

    it('backs up as a multipart object and restores from it', async () => {
      const storeUrl = s3.storeUrl('backups', { partSize: '5' });
      const backup = await runCli(['backup', big.url, '--target', 's3-big', '--store', storeUrl, '--json'], s3env);
      assert.equal(backup.code, 0, backup.stderr);
      const result = JSON.parse(backup.stdout);
      assert.equal(result.status, 'succeeded');
      assert.ok(!JSON.stringify(result).includes('S3RVER'), 'no credentials in the run');
      const parts = (await s3.requests()).filter((request) => request.method === 'PUT' && request.query.partNumber !== undefined);
      assert.ok(parts.length >= 2, `multipart upload with ${parts.length} parts`);
      assert.deepEqual(await s3.pendingMultipartUploads(), []);
      // The upload is on the run's record from its creation to its completion.
      const uploads = (await listRunEvents(catalog.pool, result.id)).filter((event) => event.kind.startsWith('upload_'));
      assert.deepEqual(
        uploads.map((event) => event.kind),
        ['upload_started', 'upload_completed'],
      );
      assert.equal(uploads[0]!.data?.uploadId, uploads[1]!.data?.uploadId);
      assert.match(String(uploads[0]!.data?.key), /^s3-big\/.*\/dump\.pgcustom\.zst$/);

      const target = await freshDatabase('from_s3');
      const restored = await runCli(['restore', result.id, '--to', target.url], s3env);
      assert.equal(restored.code, 0, restored.stderr);
      assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(big.url));
    });

    it('a store outage during the upload fails the run with the store error and leaves nothing', async () => {
      const storeUrl = s3.storeUrl('outage', { partSize: '5' });
      await runCli(['target', 'add', 's3-outage', '--database-url', big.url, '--store', storeUrl], s3env);
      const trigger = await runCli(['trigger', 's3-outage'], s3env);
      const runId = trigger.stdout.trim();
      const lock = await holdTableLock(big.url, 'orders');
      const runner = startCli(['run', runId], s3env);
      try {
        await waitFor('dump connected', async () => (await dumpSessions(runId)) > 0);
        await s3.halt();
        await lock.release();
        const exit = await runner.exited;
        assert.equal(exit.code, 12, runner.stderr());
      } finally {
        await lock.release();
        if (runner.child.exitCode === null) runner.child.kill('SIGKILL');
        await s3.restart();
      }
      const shown = JSON.parse((await runCli(['runs', 'show', runId, '--json'], s3env)).stdout);
      assert.equal(shown.status, 'failed');
      assert.equal(shown.error.code, 'STORE_WRITE_FAILED');
      assert.equal(shown.artifact, null);
      assert.deepEqual(
        (await filesUnder(path.join(s3.directory, s3.bucket))).filter((file) => file.includes(runId)),
        [],
      );
      assert.deepEqual(await s3.pendingMultipartUploads(), []);
    });

    it('a runner killed (SIGKILL) mid-upload cannot abort its multipart upload: prune does, once', async () => {
      // About 32 MB of dump, stored uncompressed: seven 5 MiB parts, so the runner is still
      // sending parts when it is killed right after the upload was recorded.
      const huge = await freshDatabase('huge');
      await adminQuery(
        `create table blobs (id int primary key, data bytea);
         insert into blobs select g, (select decode(string_agg(md5(random()::text || g || s), ''), 'hex') from generate_series(1, 64) s)
         from generate_series(1, 16384) g;`,
        [],
        huge.url,
      );
      const storeUrl = s3.storeUrl('killed', { partSize: '5' });
      const added = await runCli(['target', 'add', 's3-killed', '--database-url', huge.url, '--store', storeUrl, '--compression', 'none'], s3env);
      assert.equal(added.code, 0, added.stderr);
      const runId = (await runCli(['trigger', 's3-killed'], s3env)).stdout.trim();
      const runner = startCli(['run', runId], { ...s3env, BACKSTOP_HEARTBEAT_INTERVAL: '0.3', BACKSTOP_LEASE_TTL: '3' });
      let started: { key: string; uploadId: string };
      try {
        const event = await waitFor('upload recorded', async () => (await listRunEvents(catalog.pool, runId)).find((candidate) => candidate.kind === 'upload_started'), 60_000, 10);
        runner.child.kill('SIGKILL');
        started = event.data as { key: string; uploadId: string };
      } finally {
        if (runner.child.exitCode === null) runner.child.kill('SIGKILL');
        await runner.exited;
      }
      assert.deepEqual(await s3.pendingMultipartUploads(), [started.uploadId], 'the killed runner left its upload');

      // Its lease runs out and the reaper ends the run; then garbage collection aborts the upload.
      const reaped = await waitFor(
        'run reaped',
        async () => {
          await reapRuns(catalog.pool);
          const record = await getRun(catalog.pool, runId);
          return record.status === 'running' ? null : record;
        },
        30_000,
        200,
      );
      assert.ok(['queued', 'timed_out'].includes(reaped.status), reaped.status);
      if (reaped.status === 'queued') await runCli(['cancel', runId], s3env);
      const pruned = await runCli(['prune', '--target', 's3-killed', '--grace-period', '0', '--json'], s3env);
      assert.equal(pruned.code, 0, pruned.stderr);
      assert.deepEqual(JSON.parse(pruned.stdout).targets[0].uploads, [{ runId, key: started.key, uploadId: started.uploadId, result: 'aborted' }]);
      assert.deepEqual(await s3.pendingMultipartUploads(), []);
      const aborted = (await listRunEvents(catalog.pool, runId)).filter((event) => event.kind === 'upload_aborted');
      assert.deepEqual(
        aborted.map((event) => event.data?.uploadId),
        [started.uploadId],
      );
      const text = await runCli(['prune', '--target', 's3-killed', '--grace-period', '0'], s3env);
      assert.doesNotMatch(text.stdout, /multipart upload/, 'the next pass has nothing left to abort');

      // A runner's record is not trusted beyond its own artifact folder.
      await appendRunEvent(catalog.pool, { runId, kind: 'upload_started', message: 'forged', data: { storeUrl, key: 'other-target/object', uploadId: 'abc123' } });
      const forged = JSON.parse((await runCli(['prune', '--target', 's3-killed', '--grace-period', '0', '--json'], s3env)).stdout).targets[0];
      assert.deepEqual(forged.uploads, []);
      assert.ok(
        forged.warnings.some((warning: string) => warning.includes('other-target/object') && warning.includes('left alone')),
        forged.warnings.join('; '),
      );
    });

    it('a cancel during the upload ends cancelled and leaves no object', async () => {
      const storeUrl = s3.storeUrl('cancelled', { partSize: '5' });
      await runCli(['target', 'add', 's3-cancel', '--database-url', big.url, '--store', storeUrl], s3env);
      const runId = (await runCli(['trigger', 's3-cancel'], s3env)).stdout.trim();
      const lock = await holdTableLock(big.url, 'orders');
      const runner = startCli(['run', runId], { ...s3env, BACKSTOP_HEARTBEAT_INTERVAL: '0.3', BACKSTOP_LEASE_TTL: '3' });
      try {
        await waitFor('dump connected', async () => (await dumpSessions(runId)) > 0);
        const cancel = await runCli(['cancel', runId], s3env);
        assert.equal(cancel.code, 0, cancel.stderr);
        assert.equal((await runner.exited).code, 130, runner.stderr());
      } finally {
        await lock.release();
        if (runner.child.exitCode === null) runner.child.kill('SIGKILL');
      }
      const shown = JSON.parse((await runCli(['runs', 'show', runId, '--json'], s3env)).stdout);
      assert.equal(shown.status, 'cancelled');
      assert.deepEqual(
        (await filesUnder(path.join(s3.directory, s3.bucket))).filter((file) => file.includes(runId)),
        [],
      );
      assert.deepEqual(await s3.pendingMultipartUploads(), []);
    });
  });

  describe('pg_dump version matching', () => {
    let home: string;
    let pg17Url: string;

    before(async () => {
      home = await temporaryHome('backstop-pg17-');
      const server = await ensureEmbeddedPostgres(home, { binaryPackage: 'pg17' });
      pg17Url = server.url();
    });
    after(async () => {
      await stopEmbeddedPostgres(home, { binaryPackage: 'pg17', mode: 'immediate' });
      await fs.rm(home, { recursive: true, force: true });
    });

    it('refuses a server newer than every installed pg_dump with PG_VERSION_MISMATCH, before anything runs', async (t) => {
      const dumps = await discoverPgTools('pg_dump');
      if (dumps.some((tool) => tool.major >= 17)) return t.skip('a pg_dump 17 or newer is installed here');
      const [version] = await adminQuery<{ server_version_num: string }>('show server_version_num', [], pg17Url);
      assert.ok(Number(version!.server_version_num) >= 170000);

      const storeDir = path.join(workDir, 'pg17-store');
      const backup = await runCli(['backup', pg17Url, '--target', 'pg17', '--store', storeDir, '--json'], env);
      assert.equal(backup.code, 9, backup.stderr);
      // Refused by the checks a new target passes: no target, no run, nothing stored.
      const { error } = JSON.parse(backup.stdout);
      assert.equal(error.code, 'PG_VERSION_MISMATCH');
      assert.match(error.message, /PostgreSQL 17/);
      assert.match(error.message, /15\.\d+ \(/);
      // On Debian 12, whose own archive has only PostgreSQL 15: the PGDG repository's client.
      assert.match(
        error.message,
        /`sudo apt-get install -y postgresql-common && sudo \/usr\/share\/postgresql-common\/pgdg\/apt\.postgresql\.org\.sh -y && sudo apt-get install -y postgresql-client-17`/,
      );
      assert.deepEqual(await filesUnder(storeDir), []);
      const listed = JSON.parse((await runCli(['target', 'list', '--json'], env)).stdout) as Array<{ name: string }>;
      assert.ok(!listed.some((target) => target.name === 'pg17'), 'no target left behind');
    });
  });
});
