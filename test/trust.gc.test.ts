import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { pruneTargets } from '../src/operations/pruneTargets.ts';
import { artifactPrefix } from '../src/core/manifest.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { runCli } from './support/cli.ts';
import { manifestFor } from './support/manifests.ts';
import { adminQuery, createSampleDatabase, createTestCatalog, createTestDatabase, type TestDatabase } from './support/pg.ts';
import { startS3rver, type S3rverHandle } from './support/s3rver.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { filesUnder } from './support/store.ts';

/**
 * Attacks on garbage collection and retention, performed for real: real backups (pg_dump of a
 * real database into a local folder or s3rver), a real catalog, the real CLI and server. Each
 * asserts the effect is absent: every complete backup still in the store, the victim folder
 * intact. Nothing complete is ever deleted for lack of a catalog row.
 */

const log = pino({ level: 'silent' });

/** Every file under a folder with its SHA-256, to prove a store was left byte for byte as it was. */
async function fingerprint(root: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const file of await filesUnder(root))
    result[file] = createHash('sha256')
      .update(await fs.readFile(path.join(root, file)))
      .digest('hex');
  return result;
}

/** The `attempt-<n>/` folders under a target's folder that hold a manifest. */
async function completePrefixes(storeDir: string, target: string): Promise<string[]> {
  return (await filesUnder(path.join(storeDir, target)))
    .filter((file) => file.endsWith('/manifest.json'))
    .map((file) => `${target}/${file.slice(0, -'manifest.json'.length)}`)
    .sort();
}

describe('nothing complete is deleted for lack of a catalog row', { timeout: 600_000 }, () => {
  let source: TestDatabase;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    source = await createSampleDatabase(200);
    cleanups.push(source.drop);
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const newStoreDir = async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-gc-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    return dir;
  };

  const backUp = async (env: Record<string, string>, target: string) => {
    const result = await runCli(['backup', source.url, '--target', target, '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const run = JSON.parse(result.stdout);
    assert.equal(run.status, 'succeeded');
    return run as { id: string; artifact: { prefix: string } };
  };

  it('a target deleted and recreated with the same name and store: prune keeps and lists the old backups; --delete-unknown deletes exactly those', async () => {
    const catalog = await createTestCatalog();
    cleanups.push(() => catalog.close());
    const storeDir = await newStoreDir();
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
    const server: TestServer = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_STORE: `file://${storeDir}` } });
    cleanups.push(() => server.close());

    const old = [await backUp(env, 'app'), await backUp(env, 'app'), await backUp(env, 'app')];
    const before = await fingerprint(storeDir);

    // Deleting the target (API, as the dashboard does) keeps its stored backups.
    const deleted = await server.request('DELETE', '/api/v1/targets/app', { token: server.tokens.admin });
    assert.equal(deleted.status, 200, deleted.text);
    assert.deepEqual(deleted.json.keptBackups.map((backup: { prefix: string }) => backup.prefix).sort(), old.map((run) => run.artifact.prefix).sort());
    assert.deepEqual(await fingerprint(storeDir), before, 'deleting the target touched its stored backups');

    // The same name and store again, with a policy that would delete everything it may.
    const added = await runCli(['target', 'add', 'app', '--database-url', source.url, '--store', `file://${storeDir}`, '--keep-last', '1'], env);
    assert.equal(added.code, 0, added.stderr);
    const fresh = await backUp(env, 'app');

    const pruned = await runCli(['prune', '--target', 'app', '--grace-period', '0', '--json'], env);
    assert.equal(pruned.code, 0, pruned.stderr);
    const report = JSON.parse(pruned.stdout).targets[0];
    for (const [file, sha256] of Object.entries(before)) {
      assert.equal((await fingerprint(storeDir))[file], sha256, `${file} of an old backup was deleted or changed`);
    }
    const oldPrefixes = old.map((run) => run.artifact.prefix).sort();
    assert.deepEqual(report.unknown.map((item: { prefix: string }) => item.prefix).sort(), oldPrefixes);
    assert.ok(report.unknown.every((item: { reason: string; detail: string }) => item.reason === 'run-missing' && /no run/.test(item.detail)));
    assert.deepEqual(report.garbage, []);
    assert.deepEqual(await completePrefixes(storeDir, 'app'), [...oldPrefixes, fresh.artifact.prefix].sort());

    // The text report says what they are and what to do.
    const text = await runCli(['prune', '--target', 'app', '--grace-period', '0', '--dry-run'], env);
    assert.equal(text.code, 0, text.stderr);
    for (const prefix of oldPrefixes) assert.ok(text.stdout.includes(`unknown ${prefix}`), text.stdout);
    assert.match(text.stdout, /3 unknown complete backup\(s\) kept: import them \(backstop import .*\) or delete them \(backstop prune --target app --delete-unknown\)/);

    // A metric, the API and the dashboard's source show them.
    const metrics = await server.request('GET', '/metrics', { token: null });
    assert.match(metrics.text, /^backstop_unknown_backups\{target="app"\} 3$/m);
    const listed = await server.request('GET', '/api/v1/targets/app/unknown-backups', { token: server.tokens.viewer });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(
      listed.json.items.map((item: { prefix: string }) => item.prefix),
      oldPrefixes,
    );

    // A person decides: the names first, then exactly those are deleted.
    const removal = await runCli(['prune', '--target', 'app', '--grace-period', '0', '--delete-unknown'], env);
    assert.equal(removal.code, 0, removal.stderr);
    const announced = removal.stdout.indexOf('deleting 3 unknown complete backup(s)');
    assert.ok(announced >= 0, removal.stdout);
    const listedFirst = removal.stdout
      .slice(announced)
      .split('\n')
      .slice(1, 4)
      .map((line) => line.trim());
    assert.deepEqual(listedFirst.sort(), oldPrefixes);
    assert.deepEqual(await completePrefixes(storeDir, 'app'), [fresh.artifact.prefix]);
    assert.deepEqual(
      (await filesUnder(storeDir)).filter((file) => old.some((run) => file.includes(run.id))),
      [],
      'an unknown backup was only partly deleted',
    );
    const after = await server.request('GET', '/metrics', { token: null });
    assert.match(after.text, /^backstop_unknown_backups\{target="app"\} 0$/m);
  });

  it('a catalog restored from an older backup: prune deletes none of the backups taken since', async () => {
    const catalog = await createTestCatalog();
    // Its pool is ended below, to copy the database: only the database is left to drop.
    cleanups.push(() => catalog.drop());
    const storeDir = await newStoreDir();
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
    await runCli(['target', 'add', 'app', '--database-url', source.url, '--store', `file://${storeDir}`, '--keep-last', '2'], env);
    await backUp(env, 'app');
    await backUp(env, 'app');
    // A run queued when the catalog was backed up, executed after.
    const queued = await runCli(['trigger', 'app'], env);
    assert.equal(queued.code, 0, queued.stderr);
    const queuedId = queued.stdout.trim();

    // The catalog's backup: a copy of its database as it is now.
    await catalog.pool.end();
    const snapshot = await createTestDatabase('catalog_snapshot', catalog.name);
    cleanups.push(snapshot.drop);

    const ran = await runCli(['run', queuedId, '--json'], env);
    assert.equal(ran.code, 0, ran.stderr);
    await backUp(env, 'app');
    await backUp(env, 'app');
    const before = await fingerprint(storeDir);
    assert.equal((await completePrefixes(storeDir, 'app')).length, 5);

    // The catalog is lost and restored from that backup; the run it shows queued is cancelled
    // by an operator (it will never come back): its row says cancelled, its backup is real.
    const restored = { BACKSTOP_DATABASE_URL: snapshot.url, BACKSTOP_STORE: `file://${storeDir}` };
    const stillQueued = await runCli(['prune', '--target', 'app', '--grace-period', '0', '--json'], restored);
    assert.equal(stillQueued.code, 0, stillQueued.stderr);
    assert.deepEqual(await fingerprint(storeDir), before, 'prune on the restored catalog deleted a backup');
    const cancelled = await runCli(['cancel', queuedId], restored);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    const pruned = await runCli(['prune', '--target', 'app', '--grace-period', '0', '--json'], restored);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(await fingerprint(storeDir), before, 'prune on the restored catalog deleted a backup');
    const report = JSON.parse(pruned.stdout).targets[0];
    assert.deepEqual(report.deleted, []);
    // The two taken after the catalog's backup have no row; the queued one's row says cancelled.
    const reasons = Object.fromEntries(report.unknown.map((item: { runId: string; reason: string }) => [item.runId, item.reason]));
    assert.equal(report.unknown.length, 3, JSON.stringify(report.unknown));
    assert.equal(reasons[queuedId], 'run-not-succeeded');
    assert.equal(Object.values(reasons).filter((reason) => reason === 'run-missing').length, 2);
  });

  it('an incomplete prefix and a manifest that does not bind are deleted after the grace period; a complete backup beside them is not', async () => {
    const catalog = await createTestCatalog();
    cleanups.push(() => catalog.close());
    const storeDir = await newStoreDir();
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
    const real = await backUp(env, 'app');
    const { rows } = await catalog.pool.query<{ created_at: string }>('select created_at from backstop.runs where id = $1', [real.id]);
    const createdAt = rows[0]!.created_at;

    // A runner that died before its manifest.
    const incomplete = artifactPrefix('app', createdAt, randomUUID(), 1);
    await fs.mkdir(path.join(storeDir, incomplete), { recursive: true });
    await fs.writeFile(path.join(storeDir, incomplete, 'dump.pgcustom.zst'), 'half a dump');
    // A complete backup copied into another run's folder: its manifest names the real run.
    const copied = artifactPrefix('app', createdAt, randomUUID(), 1);
    await fs.cp(path.join(storeDir, real.artifact.prefix), path.join(storeDir, copied), { recursive: true });
    // And one whose manifest names the right run but another attempt.
    const otherAttempt = artifactPrefix('app', createdAt, randomUUID(), 2);
    await fs.mkdir(path.join(storeDir, otherAttempt), { recursive: true });
    await fs.writeFile(path.join(storeDir, otherAttempt, 'manifest.json'), JSON.stringify(manifestFor({ runId: otherAttempt.split('/')[3]!, attempt: 1, target: 'app', createdAt })));

    const young = await runCli(['prune', '--target', 'app', '--grace-period', '3600', '--json'], env);
    assert.equal(young.code, 0, young.stderr);
    assert.equal(JSON.parse(young.stdout).targets[0].garbageWaiting, 3);
    for (const prefix of [incomplete, copied, otherAttempt]) await fs.access(path.join(storeDir, prefix));

    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    for (const prefix of [incomplete, copied, otherAttempt]) {
      for (const file of await fs.readdir(path.join(storeDir, prefix))) await fs.utimes(path.join(storeDir, prefix, file), twoHoursAgo, twoHoursAgo);
    }
    const realBefore = await fingerprint(path.join(storeDir, real.artifact.prefix));
    const old = await runCli(['prune', '--target', 'app', '--grace-period', '3600', '--json'], env);
    assert.equal(old.code, 0, old.stderr);
    const report = JSON.parse(old.stdout).targets[0];
    assert.deepEqual(Object.fromEntries(report.garbage.map((item: { prefix: string; reason: string }) => [item.prefix, item.reason])), {
      [incomplete]: 'incomplete',
      [copied]: 'invalid-manifest',
      [otherAttempt]: 'invalid-manifest',
    });
    assert.deepEqual(report.unknown, []);
    assert.deepEqual(await completePrefixes(storeDir, 'app'), [real.artifact.prefix]);
    assert.deepEqual((await filesUnder(path.join(storeDir, 'app'))).length, Object.keys(realBefore).length);
    assert.deepEqual(await fingerprint(path.join(storeDir, real.artifact.prefix)), realBefore);
  });

  describe('S3 (s3rver)', () => {
    let s3: S3rverHandle;
    before(async () => {
      s3 = await startS3rver();
      cleanups.push(() => s3.stop());
      Object.assign(process.env, s3.env);
    });

    it('a store that fails to answer while manifests are read: nothing is deleted; once it answers, the copy that does not bind goes', async () => {
      const catalog = await createTestCatalog();
      cleanups.push(() => catalog.close());
      const storeUrl = s3.storeUrl('gc');
      const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: storeUrl, ...s3.env };
      const real = await backUp(env, 's3app');
      const store = await openStore(storeUrl);
      const copied = real.artifact.prefix.replace(real.id, randomUUID());
      try {
        for await (const object of store.list(real.artifact.prefix)) {
          await store.put(copied + object.key.slice(real.artifact.prefix.length), await store.get(object.key));
        }
      } finally {
        await store.close();
      }
      const bucketDir = path.join(s3.directory, s3.bucket);
      const before = await fingerprint(bucketDir);

      // The listing succeeds, then the store goes down: every manifest read fails for real.
      const haltAfterListing = async (url: string): Promise<Store> => {
        const inner = await openStore(url);
        return {
          ...inner,
          url: inner.url,
          async *list(prefix: string) {
            yield* inner.list(prefix);
            await s3.halt();
          },
          get: inner.get.bind(inner),
          stat: inner.stat.bind(inner),
          put: inner.put.bind(inner),
          delete: inner.delete.bind(inner),
          close: inner.close.bind(inner),
        };
      };
      let report;
      try {
        report = await pruneTargets({ db: catalog.pool, log, openStore: haltAfterListing }, { targetName: 's3app', gracePeriodMs: 0 });
      } finally {
        await s3.restart();
      }
      const entry = report.targets[0]!;
      assert.deepEqual(entry.garbage, []);
      assert.ok(
        entry.warnings.some((warning) => warning.includes(`${copied}manifest.json could not be read`) && /nothing is deleted on a failed read/.test(warning)),
        entry.warnings.join('\n'),
      );
      assert.deepEqual(await fingerprint(bucketDir), before, 'something was deleted on a failed read');

      // The store answers again: the copy is positively not a backup of its folder.
      const again = await pruneTargets({ db: catalog.pool, log }, { targetName: 's3app', gracePeriodMs: 0 });
      assert.deepEqual(
        again.targets[0]!.garbage.map((item) => [item.prefix, item.reason]),
        [[copied, 'invalid-manifest']],
      );
      const left = Object.keys(await fingerprint(bucketDir)).filter((file) => !file.includes('._S3rver_uploads'));
      assert.ok(
        left.every((file) => !file.includes(copied.split('/')[3]!)),
        left.join('\n'),
      );
      assert.ok(
        left.some((file) => file.includes(real.id) && file.includes('manifest.json')),
        'the real backup is gone',
      );
    });
  });

  it("a forged catalog row chosen by retention (another folder, another target's backup): the victims are intact", async () => {
    const catalog = await createTestCatalog();
    cleanups.push(() => catalog.close());
    const storeDir = await newStoreDir();
    const victimDir = await newStoreDir();
    await fs.mkdir(path.join(victimDir, 'precious'), { recursive: true });
    await fs.writeFile(path.join(victimDir, 'precious', 'data.txt'), "not Backstop's");
    await fs.writeFile(path.join(victimDir, 'manifest.json'), '{}');
    const env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
    await runCli(['target', 'add', 'app', '--database-url', source.url, '--store', `file://${storeDir}`, '--keep-last', '1'], env);
    const other = await backUp(env, 'other');
    await backUp(env, 'app');
    await backUp(env, 'app');
    const victimBefore = await fingerprint(victimDir);
    const storeBefore = await fingerprint(path.join(storeDir, 'other'));

    // Rows a hostile runner's finalize (or an older catalog) left: succeeded backups of app,
    // older than the others so that keep-last 1 chooses them, whose artifact names a folder of
    // the server's disk or another target's backup. One is marked pruned, as an interrupted
    // prune would have left it.
    const { rows } = await catalog.pool.query<{ id: string }>("select id from backstop.targets where name = 'app'");
    const forged = [
      { storeUrl: `file://${victimDir}`, prefix: '', pruned: false },
      { storeUrl: `file://${victimDir}`, prefix: 'precious/', pruned: true },
      { storeUrl: `file://${storeDir}`, prefix: other.artifact.prefix, pruned: false },
    ];
    const forgedIds: string[] = [];
    for (const [index, row] of forged.entries()) {
      const id = randomUUID();
      forgedIds.push(id);
      await catalog.pool.query(
        `insert into backstop.runs (id, target_id, status, trigger, attempt, deadline_at, created_at, started_at, finished_at, artifact, pruned_at)
         values ($1, $2, 'succeeded', 'test', 1, now(), now() - $3 * interval '1 day', now() - $3 * interval '1 day', now() - $3 * interval '1 day', $4::jsonb,
                 case when $5 then now() end)`,
        [
          id,
          rows[0]!.id,
          10 + index,
          JSON.stringify({
            storeUrl: row.storeUrl,
            prefix: row.prefix,
            manifest: { name: 'manifest.json', size: 2, sha256: 'a'.repeat(64) },
            files: [{ name: 'data.txt', size: 14, sha256: 'b'.repeat(64) }],
          }),
          row.pruned,
        ],
      );
    }

    const pruned = await runCli(['prune', '--grace-period', '0', '--json'], env);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(await fingerprint(victimDir), victimBefore, 'prune deleted in the victim folder');
    assert.deepEqual(await fingerprint(path.join(storeDir, 'other')), storeBefore, "prune deleted another target's backup");
    const report = JSON.parse(pruned.stdout).targets.find((target: { target: string }) => target.target === 'app');
    // Retention chose them, and left them in place with the reason; the real older backup went.
    assert.deepEqual(report.unverified.map((item: { id: string }) => item.id).sort(), [...forgedIds].sort());
    for (const item of report.unverified) assert.match(item.reason, /not in the target's store|not at app\//);
    assert.equal(report.deleted.length, 1);
    const stillThere = await adminQuery<{ n: number }>('select count(*)::int as n from backstop.runs where id = any($1::uuid[])', [forgedIds], catalog.url);
    assert.equal(stillThere[0]!.n, 3, 'the forged rows are kept for a person to see');

    const text = await runCli(['prune', '--target', 'app', '--grace-period', '0'], env);
    assert.deepEqual(await fingerprint(victimDir), victimBefore, 'prune deleted in the victim folder');
    assert.match(text.stdout, /retention chose it, but it was left in place: it records its artifact in file:\/\//);
  });
});
