import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { withDatabase } from '../src/core/databaseUrl.ts';
import { generateIdentity } from '../src/pipeline/age.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, adminUrl, createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { filesUnder } from './support/store.ts';

/**
 * The whole life of a target through the real CLI, against a real catalog, real pg_dump and
 * real stores: add (and every check that refuses it, each naming its flag), test, update of
 * every setting (a rotated database password included), rename, pause and resume, delete, and
 * the one-shot `backup` that registers a target only when its backup succeeds.
 */

const TEST_TIMEOUT = { timeout: 300_000 };

describe('target lifecycle through the CLI', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let workDir: string;
  let storeDir: string;
  let env: Record<string, string>;
  const roles: string[] = [];
  const drops: Array<() => Promise<void>> = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(50);
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-lifecycle-'));
    storeDir = path.join(workDir, 'store');
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
  });

  after(async () => {
    for (const drop of drops) await drop();
    await source?.drop();
    for (const role of roles) await adminQuery(`drop role if exists ${role}`);
    await catalog?.close();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, { ...env, ...extra });
  const json = async (args: string[], extra: Record<string, string> = {}) => {
    const result = await cli([...args, '--json'], extra);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout);
  };
  const targetNames = async () => (await catalog.pool.query<{ name: string }>('select name from backstop.targets order by name')).rows.map((row) => row.name);
  const runCount = async () => (await catalog.pool.query<{ count: number }>('select count(*)::int as count from backstop.runs')).rows[0]!.count;

  /** A login role that reads every table of `source` (pg_read_all_data), with this password. */
  const readerRole = async (password: string) => {
    const role = `reader_${roles.length}_${process.pid}`;
    roles.push(role);
    await adminQuery(`create role ${role} login password '${password}' in role pg_read_all_data`);
    return role;
  };
  const urlAs = (database: TestDatabase, user: string, password: string) => {
    const url = new URL(database.url);
    url.username = user;
    url.password = password;
    return url.toString();
  };
  /** Queues a backup of `target` and runs it here, as a CI job would. */
  const backupOf = async (target: string) => {
    const triggered = await cli(['trigger', target]);
    assert.equal(triggered.code, 0, triggered.stderr);
    return cli(['run', triggered.stdout.trim(), '--json']);
  };

  it("`target add` refuses, before anything is stored, with the failing check's code and the flag at fault", TEST_TIMEOUT, async () => {
    const aFile = path.join(workDir, 'a-file');
    await fs.writeFile(aFile, 'not a folder');
    const cases: Array<{ what: string; args: string[]; env?: Record<string, string>; exit: number; stderr: RegExp }> = [
      {
        what: 'unreachable database',
        args: ['--database-url', 'postgres://u:SECRETPW@127.0.0.1:1/db'],
        exit: 8,
        stderr: /--database-url: Cannot connect to the database at postgres:\/\/u:\*{5}@127\.0\.0\.1:1\/db: .*\[DATABASE_UNREACHABLE\]/,
      },
      { what: 'unwritable store', args: ['--database-url', source.url, '--store', path.join(aFile, 'store')], exit: 12, stderr: /--store: .*a-file.*\[STORE_WRITE_FAILED\]/ },
      {
        what: 'ftp:// store',
        args: ['--database-url', source.url, '--store', 'ftp://files.example.com/backups'],
        exit: 2,
        stderr: /--store: Backstop stores backups in a folder .* or an S3-compatible bucket.*\[INVALID_INPUT\]/,
      },
      { what: 'an invalid age key', args: ['--database-url', source.url, '--encrypt-to', 'age1notakey'], exit: 2, stderr: /--encrypt-to: must be an age recipient \(age1…\)/ },
      {
        what: 'no pg_dump',
        args: ['--database-url', source.url],
        env: { BACKSTOP_PG_BIN: '/nonexistent', BACKSTOP_PG_BIN_ONLY: 'true' },
        exit: 9,
        stderr: /--database-url: No pg_dump found .*\[PG_TOOL_NOT_FOUND\]/,
      },
    ];
    for (const { what, args, exit, stderr, env: extra } of cases) {
      const result = await cli(['target', 'add', 'refused', ...args], extra);
      assert.equal(result.code, exit, `${what}: ${result.stderr}`);
      assert.match(result.stderr, stderr, what);
      assert.ok(!result.stderr.includes('SECRETPW'), what);
    }
    // Every problem of the input at once, each after its flag.
    const several = await cli(['target', 'add', 'Refused', '--database-url', source.url, '--compression', 'lz4', '--max-attempts', '11', '--schedule', '61 * * * *']);
    assert.equal(several.code, 2, several.stderr);
    for (const flag of ['NAME: must be 1 to 63', '--compression: must be zstd', '--max-attempts: must be a whole number from 1 to 10', '--schedule: Invalid schedule']) {
      assert.ok(several.stderr.includes(flag), `${flag} in ${several.stderr}`);
    }
    assert.deepEqual(await targetNames(), []);
    assert.deepEqual(await filesUnder(storeDir), [], 'no probe object left behind');
  });

  it("`--skip-checks` stores a target nobody can reach now; `target test` reports every check and exits with the failure's code", TEST_TIMEOUT, async () => {
    // The checks are skipped, the rules are not.
    const ftp = await cli(['target', 'add', 'later', '--database-url', 'postgres://u:p@127.0.0.1:1/db', '--store', 'ftp://x/y', '--skip-checks']);
    assert.equal(ftp.code, 2, ftp.stderr);
    const later = await json(['target', 'add', 'later', '--database-url', 'postgres://u:p@127.0.0.1:1/db', '--skip-checks']);
    assert.deepEqual(later.database, { host: '127.0.0.1', port: 1, database: 'db', user: 'u' });

    const failing = await cli(['target', 'test', 'later', '--json']);
    assert.equal(failing.code, 8, failing.stderr);
    const report = JSON.parse(failing.stdout);
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.map((check: { name: string; ok: boolean; error?: { code: string } }) => [check.name, check.ok, check.error?.code ?? null]),
      [
        ['store-url', true, null],
        ['database', false, 'DATABASE_UNREACHABLE'],
        ['pg-dump', false, null],
        ['store-write', true, null],
      ],
    );
    assert.match(report.checks[2].detail, /not tried/);

    assert.equal((await cli(['target', 'add', 'good', '--database-url', source.url])).code, 0);
    const passing = await cli(['target', 'test', 'good']);
    assert.equal(passing.code, 0, passing.stderr);
    assert.match(passing.stdout, /database +ok +PostgreSQL \d+/);
    assert.match(passing.stdout, /pg-dump +ok +pg_dump \d+/);
    assert.match(passing.stdout, /store-write +ok +wrote and deleted a probe object/);
    assert.match(passing.stdout, /passed every check/);
    for (const name of ['later', 'good']) assert.equal((await cli(['target', 'delete', name])).code, 0);
  });

  it('`target update` changes every setting; a rotated database password is taken after `--database-url`, checked first', TEST_TIMEOUT, async () => {
    const role = await readerRole('old-secret-1');
    const oldUrl = urlAs(source, role, 'old-secret-1');
    assert.equal((await cli(['target', 'add', 'app', '--database-url', oldUrl])).code, 0);
    assert.equal((await backupOf('app')).code, 0);

    await adminQuery(`alter role ${role} password 'new-secret-2'`);
    const stale = await backupOf('app');
    assert.equal(stale.code, 8, stale.stderr);
    assert.equal((await cli(['target', 'test', 'app'])).code, 8);
    // A new URL that does not work either is refused and changes nothing.
    const wrong = await cli(['target', 'update', 'app', '--database-url', urlAs(source, role, 'wrong-secret')]);
    assert.equal(wrong.code, 8, wrong.stderr);
    assert.match(wrong.stderr, /--database-url: Cannot connect .*password/);
    const rotated = await cli(['target', 'update', 'app', '--database-url', urlAs(source, role, 'new-secret-2')]);
    assert.equal(rotated.code, 0, rotated.stderr);
    const after = await backupOf('app');
    assert.equal(after.code, 0, after.stderr);

    // Every other setting, and a backup that follows them.
    const newStore = path.join(workDir, 'moved');
    const { recipient } = generateIdentity();
    const updated = await json([
      'target',
      'update',
      'app',
      '--store',
      newStore,
      '--compression',
      'gzip:5',
      '--encrypt-to',
      recipient,
      '--max-attempts',
      '3',
      '--checksums',
      '--restore-to',
      'restore.internal:5432/*',
      '--no-exclusive',
      '--schedule',
      '0 3 * * *',
      '--timezone',
      'Europe/Paris',
      '--keep-last',
      '4',
      '--verify-every',
      '2',
      '--notify-slack',
      'https://hooks.example.com/services/x',
    ]);
    assert.equal(updated.storeUrl, `file://${newStore}`);
    assert.deepEqual(updated.options, { compression: 'gzip:5', encryptTo: [recipient], checksums: true, restoreTo: ['restore.internal:5432/*'] });
    assert.equal(updated.maxAttempts, 3);
    assert.equal(updated.exclusive, false);
    assert.deepEqual(updated.schedule, { cron: '0 3 * * *', timezone: 'Europe/Paris' });
    assert.deepEqual(updated.retention, { keepLast: 4 });
    assert.deepEqual(updated.verification, { everyNth: 2 });
    assert.deepEqual(
      updated.notifications.map((channel: { kind: string }) => channel.kind),
      ['slack'],
    );
    const moved = JSON.parse((await backupOf('app')).stdout);
    assert.equal(moved.status, 'succeeded', JSON.stringify(moved.error));
    assert.equal(moved.artifact.storeUrl, `file://${newStore}`);
    assert.ok(
      moved.artifact.files.some((file: { name: string }) => file.name === 'dump.pgcustom.gz.age'),
      JSON.stringify(moved.artifact.files),
    );

    const github = await json(['target', 'update', 'app', '--github', 'acme/infra', '--github-ref', 'release']);
    assert.deepEqual(github.executor, { kind: 'github', owner: 'acme', repo: 'infra', workflow: 'backstop-backup.yml', ref: 'release' });
    const back = await json([
      'target',
      'update',
      'app',
      '--no-github',
      '--no-encryption',
      '--no-checksums',
      '--no-restore-to',
      '--exclusive',
      '--profile',
      'default',
      '--no-schedule',
      '--no-retention',
      '--no-verify',
      '--clear-notifications',
      '--max-attempts',
      '1',
    ]);
    assert.equal(back.executor, null);
    assert.deepEqual(back.options, { compression: 'gzip:5', checksums: false, profile: 'default' });
    assert.equal(back.exclusive, true);
    assert.equal(back.maxAttempts, 1);
    assert.deepEqual([back.schedule, back.retention, back.verification, back.notifications], [null, null, null, []]);

    const invalid = await cli(['target', 'update', 'app', '--github', 'not a repo', '--compression', 'lz4']);
    assert.equal(invalid.code, 2, invalid.stderr);
    assert.match(invalid.stderr, /--compression: must be zstd/);
    assert.match(invalid.stderr, /--github: must be a GitHub user or organisation name/);
    const nothing = await cli(['target', 'update', 'app']);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /Nothing to change/);
  });

  it('`target rename`: its runs follow it, new backups go under the new name, old ones still restore', TEST_TIMEOUT, async () => {
    const before = (await json(['runs', '--target', 'app'])) as Array<{ id: string; status: string }>;
    assert.ok(before.length >= 3);
    // The oldest: taken before encryption was turned on.
    const oldBackup = before.findLast((run) => run.status === 'succeeded')!;
    assert.equal((await cli(['target', 'add', 'taken', '--database-url', source.url])).code, 0);
    const clash = await cli(['target', 'rename', 'app', 'taken']);
    assert.equal(clash.code, 5, clash.stderr);
    assert.match(clash.stderr, /NEW_NAME: A target named "taken" already exists/);

    const renamed = await json(['target', 'rename', 'app', 'shop']);
    assert.equal(renamed.name, 'shop');
    assert.deepEqual(((await json(['runs', '--target', 'shop'])) as Array<{ id: string }>).map((run) => run.id).sort(), before.map((run) => run.id).sort());
    assert.equal((await cli(['runs', '--target', 'app'])).code, 4);
    const next = JSON.parse((await backupOf('shop')).stdout);
    assert.equal(next.status, 'succeeded');
    assert.match(next.artifact.prefix, /^shop\//);

    const restoredInto = await createTestDatabase('renamed');
    drops.push(restoredInto.drop);
    const restored = await cli(['restore', oldBackup.id, '--to', restoredInto.url]);
    assert.equal(restored.code, 0, restored.stderr);
  });

  it('`target pause` and `target resume`: shown on the target and in `schedules`', TEST_TIMEOUT, async () => {
    assert.equal((await cli(['target', 'update', 'shop', '--schedule', '*/5 * * * *'])).code, 0);
    const paused = await json(['target', 'pause', 'shop']);
    assert.equal(paused.paused, true);
    const listed = (await json(['schedules'])) as Array<{ target: string; paused: boolean; next: string[] }>;
    assert.deepEqual(
      listed.map(({ target, paused: p, next }) => [target, p, next.length]),
      [['shop', true, 0]],
    );
    const human = await cli(['target', 'show', 'shop']);
    assert.match(human.stdout, /target shop \(paused: no scheduled backups or drills\)/);
    assert.match(human.stdout, new RegExp(`database: ${source.name} on 127\\.0\\.0\\.1:\\d+ as reader_`));
    assert.ok(!human.stdout.includes('new-secret-2'));
    const resumed = await json(['target', 'resume', 'shop']);
    assert.equal(resumed.paused, false);
    assert.equal(((await json(['schedules'])) as Array<{ next: string[] }>)[0]!.next.length, 3);
  });

  it('`target delete`: refused while a run is active; then its backups are listed and stay in the store, and `import` brings them back', TEST_TIMEOUT, async () => {
    const queued = await cli(['trigger', 'shop']);
    const busy = await cli(['target', 'delete', 'shop']);
    assert.equal(busy.code, 5, busy.stderr);
    assert.match(busy.stderr, /TARGET_BUSY/);
    assert.equal((await cli(['cancel', queued.stdout.trim()])).code, 0);

    const succeeded = (await json(['runs', '--target', 'shop', '--status', 'succeeded'])) as Array<{ id: string; artifact: { storeUrl: string; prefix: string } }>;
    const renamedId = (await json(['target', 'show', 'shop'])).id as string;
    const deleted = await json(['target', 'delete', 'shop']);
    assert.equal(deleted.deleted, 'shop');
    assert.deepEqual(deleted.keptBackups.map((backup: { runId: string }) => backup.runId).sort(), succeeded.map((run) => run.id).sort());
    for (const backup of deleted.keptBackups as Array<{ storeUrl: string; prefix: string; sizeBytes: number }>) {
      const folder = path.join(new URL(backup.storeUrl).pathname, backup.prefix);
      const files = await fs.readdir(folder);
      assert.ok(files.includes('manifest.json'), `${folder}: ${files}`);
      let bytes = 0;
      for (const file of files) bytes += (await fs.stat(path.join(folder, file))).size;
      assert.equal(backup.sizeBytes, bytes, folder);
    }
    assert.ok(!(await targetNames()).includes('shop'));
    const human = await cli(['target', 'delete', 'taken']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /Target taken deleted/);

    // What the store holds comes back: the target (by its id, under the name its first backup there was taken with) and those backups.
    const movedStore = `file://${path.join(workDir, 'moved')}`;
    const imported = await json(['import', movedStore]);
    assert.deepEqual(
      (imported.imported as Array<{ runId: string }>).map((item) => item.runId).sort(),
      (deleted.keptBackups as Array<{ runId: string; storeUrl: string }>)
        .filter((backup) => backup.storeUrl === movedStore)
        .map((backup) => backup.runId)
        .sort(),
    );
    const { rows } = await catalog.pool.query<{ count: number }>('select count(*)::int as count from backstop.runs r join backstop.targets t on t.id = r.target_id where t.id = $1', [
      renamedId,
    ]);
    assert.equal(rows[0]!.count, imported.imported.length);
  });

  describe('one-shot `backup DATABASE_URL`', () => {
    it('a failed one-shot backup leaves the target list unchanged: bad store URL, unwritable store, unreachable database, a dump that fails', TEST_TIMEOUT, async () => {
      const aFile = path.join(workDir, 'another-file');
      await fs.writeFile(aFile, 'x');
      // A role that may connect (the checks pass) but not read the tables (pg_dump fails).
      const role = `noread_${process.pid}`;
      roles.push(role);
      await adminQuery(`create role ${role} login password 'pw-noread'`);
      const cases: Array<{ what: string; args: string[]; exit: number; stderr: RegExp }> = [
        { what: 'ftp:// store', args: [source.url, '--target', 'oneshot', '--store', 'ftp://x/y'], exit: 2, stderr: /--store: Backstop stores backups in a folder/ },
        { what: 'unwritable store', args: [source.url, '--target', 'oneshot', '--store', path.join(aFile, 'x')], exit: 12, stderr: /--store: .*\[STORE_WRITE_FAILED\]/ },
        { what: 'unreachable database', args: ['postgres://u:p@127.0.0.1:1/oneshot'], exit: 8, stderr: /DATABASE_URL: Cannot connect to the database/ },
        { what: 'a dump that fails', args: [urlAs(source, role, 'pw-noread'), '--target', 'oneshot'], exit: 10, stderr: /target "oneshot" was not kept/ },
      ];
      for (const { what, args, exit, stderr } of cases) {
        const [targetsBefore, runsBefore] = [await targetNames(), await runCount()];
        const result = await cli(['backup', ...args]);
        assert.equal(result.code, exit, `${what}: ${result.stdout}\n${result.stderr}`);
        assert.match(result.stderr, stderr, what);
        assert.deepEqual(await targetNames(), targetsBefore, `${what}: the target list is unchanged`);
        assert.equal(await runCount(), runsBefore, `${what}: no run left`);
      }
      // The same command once it can work: the target is kept.
      const kept = await cli(['backup', source.url, '--target', 'oneshot', '--json']);
      assert.equal(kept.code, 0, kept.stderr);
      assert.ok((await targetNames()).includes('oneshot'));
      // A failure of an existing target's backup does not remove it.
      await adminQuery(`alter database ${source.name} rename to ${source.name}_away`);
      try {
        assert.equal((await cli(['backup', source.url, '--target', 'oneshot'])).code, 8);
      } finally {
        await adminQuery(`alter database ${source.name}_away rename to ${source.name}`);
      }
      assert.ok((await targetNames()).includes('oneshot'));
    });

    it('settings given for an existing target that differ from its own are refused, naming `target update`; the same ones are fine', TEST_TIMEOUT, async () => {
      const otherStore = path.join(workDir, 'other-store');
      const { recipient } = generateIdentity();
      for (const [flags, expected] of [
        [
          ['--compression', 'gzip'],
          /--compression: the target "oneshot" has compression zstd:1, not gzip:6\. Change the target with `backstop target update oneshot --compression gzip`/,
        ],
        [['--store', otherStore], /--store: the target "oneshot" has its backups at file:\/\/.*, not file:\/\/.*other-store/],
        [['--encrypt-to', recipient], /--encrypt-to: the target "oneshot" has no encryption, not encryption to age1/],
        [['--profile', 'supabase'], /--profile: the target "oneshot" has the default profile, not the supabase profile/],
      ] as const) {
        const runsBefore = await runCount();
        const result = await cli(['backup', source.url, '--target', 'oneshot', ...flags]);
        assert.equal(result.code, 2, result.stderr);
        assert.match(result.stderr, expected);
        assert.match(result.stderr, /backstop target update oneshot/);
        assert.match(result.stderr, /--target NEW_NAME/);
        assert.equal(await runCount(), runsBefore);
      }
      const same = await cli(['backup', source.url, '--target', 'oneshot', '--compression', 'zstd', '--store', storeDir, '--json']);
      assert.equal(same.code, 0, same.stderr);
      const other = await cli(['backup', withDatabase(adminUrl(), 'postgres'), '--target', 'oneshot']);
      assert.equal(other.code, 5, other.stderr);
      assert.match(other.stderr, /--target: Target "oneshot" already exists for another database/);
    });
  });
});
