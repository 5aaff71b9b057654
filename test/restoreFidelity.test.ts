import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../src/core/config.ts';
import { claimRunById } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { lastLines, PgRestoreErrors } from '../src/pipeline/pgRestoreErrors.ts';
import { performDrill } from '../src/runner/performDrill.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, adminUrl, createTestCatalog, createTestDatabase, tableFingerprints, type TestCatalog, type TestDatabase } from './support/pg.ts';

/** Each table's own rows, as pg_dump writes them (a parent of inheritance without its children's). */
const OWN_ROWS = {
  'public.events_a': 600,
  'public.events_b': 400,
  'public.measurements': 10,
  'public.measurements_2024': 200,
  'public.measurements_2025': 300,
  'public.measurements_2025_q4': 40,
};

/** A long function: pg_restore's report of a failure to create it ends in thousands of x. */
const LONG_BODY = 'x'.repeat(3000);

async function ownRows(url: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of Object.keys(OWN_ROWS)) {
    const [row] = await adminQuery<{ count: string }>(`select count(*) as count from only ${table}`, [], url);
    counts[table] = Number(row!.count);
  }
  return counts;
}

describe('restore fidelity: table inheritance, partitions, failure reports', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  const drops: Array<() => Promise<void>> = [];
  let plainBackup: Promise<{ id: string; artifact: { prefix: string } }> | undefined;

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('inherit');
    // Inheritance partitioning, as before PostgreSQL 10 (and still in use): a parent with rows
    // of its own, children, and a grandchild; next to it, declarative partitioning.
    await adminQuery(
      `create table measurements (id int not null, at date not null, v int, note text);
       create table measurements_2024 (check (at >= '2024-01-01' and at < '2025-01-01')) inherits (measurements);
       create table measurements_2025 (check (at >= '2025-01-01')) inherits (measurements);
       create table measurements_2025_q4 (check (at >= '2025-10-01')) inherits (measurements_2025);
       insert into measurements select i, '2023-06-01', i, 'own ' || i from generate_series(1, 10) i;
       insert into measurements_2024 select i, '2024-01-01'::date + i, i * 2, 'child ' || i from generate_series(1, 200) i;
       insert into measurements_2025 select i, '2025-01-01'::date + i % 200, i * 3, 'child ' || i from generate_series(1, 300) i;
       insert into measurements_2025_q4 select i, '2025-10-01'::date + i, i * 4, 'grandchild ' || i from generate_series(1, 40) i;
       create index measurements_2024_v on measurements_2024 (v);
       create table events (id int not null, at date not null, kind text) partition by range (at);
       create table events_a partition of events for values from ('2020-01-01') to ('2025-01-01');
       create table events_b partition of events for values from ('2025-01-01') to ('2030-01-01');
       insert into events select i, case when i <= 600 then '2024-01-01'::date else '2026-01-01'::date end, 'kind ' || i % 7 from generate_series(1, 1000) i;
       create function long_fn() returns text language sql as $fn$ select '${LONG_BODY}'::text $fn$;`,
      [],
      source.url,
    );
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-fidelity-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres' };
  });
  after(async () => {
    for (const drop of drops) await drop();
    await source?.drop();
    await catalog?.close();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  const fresh = async (prefix: string) => {
    const database = await createTestDatabase(prefix);
    drops.push(database.drop);
    return database;
  };
  /** The backup without checksums, taken once, by whichever test needs it first. */
  const backUp = () =>
    (plainBackup ??= (async () => {
      const backup = await runCli(['backup', source.url, '--target', 'inherit', '--json'], env);
      assert.equal(backup.code, 0, backup.stderr);
      return JSON.parse(backup.stdout);
    })());
  const manifestOf = async (prefix: string) =>
    JSON.parse(await fs.readFile(path.join(storeDir, prefix, 'manifest.json'), 'utf8')) as { tables: Array<{ schema: string; name: string; rows: number; checksum?: string }> };

  it('backs up with and without checksums, restores with --jobs 1 and 4, and verifies: each table counted with its own rows', async () => {
    const plain = await backUp();
    const manifest = await manifestOf(plain.artifact.prefix);
    // The partitioned parent holds no rows itself: only its partitions are listed.
    assert.deepEqual(Object.fromEntries(manifest.tables.map((table) => [`${table.schema}.${table.name}`, table.rows])), OWN_ROWS);

    // Checksums are read on the snapshot and compared with the archive's counts, table by table.
    const added = await runCli(['target', 'add', 'inherit-checksums', '--database-url', source.url, '--checksums', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    const withChecksums = await runCli(['backup', source.url, '--target', 'inherit-checksums', '--json'], env);
    assert.equal(withChecksums.code, 0, withChecksums.stdout + withChecksums.stderr);
    const checksummed = JSON.parse(withChecksums.stdout) as { id: string };
    const checksummedManifest = await manifestOf((await getRun(catalog.pool, checksummed.id)).artifact!.prefix);
    assert.ok(checksummedManifest.tables.every((table) => /^-?\d+$/.test(table.checksum ?? '')));

    for (const jobs of ['1', '4']) {
      const target = await fresh(`inherit_jobs${jobs}`);
      const restore = await runCli(['restore', plain.id, '--to', target.url, '--jobs', jobs, '--json'], env);
      assert.equal(restore.code, 0, `--jobs ${jobs}: ${restore.stdout}${restore.stderr}`);
      assert.equal(JSON.parse(restore.stdout).tablesChecked, 6);
      assert.deepEqual(await ownRows(target.url), OWN_ROWS);
      assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
    }

    const verify = await runCli(['verify', plain.id, '--json'], env);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.equal(JSON.parse(verify.stdout).status, 'succeeded');
    const verifyChecksums = await runCli(['verify', checksummed.id, '--checksums', '--json'], env);
    assert.equal(verifyChecksums.code, 0, verifyChecksums.stdout + verifyChecksums.stderr);
    assert.equal(JSON.parse(verifyChecksums.stdout).status, 'succeeded');
  });

  it('a drill still catches rows deleted from a parent and a grandchild, naming exactly those tables', async () => {
    const subject = await getRun(catalog.pool, (await backUp()).id);
    const drillRun = await createRun(catalog.pool, { targetId: subject.targetId, trigger: 'test', runDeadlineMs: 600_000, kind: 'verify', subjectRunId: subject.id });
    const claimed = await claimRunById(catalog.pool, drillRun.id, { leaseTtlMs: 60_000, claimedBy: 'test' });
    const result = await performDrill({ db: catalog.pool, config: loadConfig(env, process.cwd()), log: pino({ level: 'silent' }) }, claimed, {
      signal: new AbortController().signal,
      onEvent: () => {},
      afterRestore: async (scratchUrl) => {
        await adminQuery(`delete from only measurements where id <= 2; delete from measurements_2025_q4 where id = 40`, [], scratchUrl);
      },
    });
    assert.equal(result.error?.code, 'VERIFY_MISMATCH');
    assert.equal(
      result.error!.message,
      'The restored backup differs from the dump: public.measurements: 8 rows restored, 10 at dump time; public.measurements_2025_q4: 39 rows restored, 40 at dump time.',
    );
  });

  it('a restore still catches a count that differs from its manifest, with --jobs 1 and 4, naming only that table', async () => {
    const plain = await backUp();
    // An altered copy of the backup, restored from its manifest URL: the archive holds 200 rows
    // of measurements_2024, the manifest claims 201.
    const copy = path.join(storeDir, 'altered');
    await fs.cp(path.join(storeDir, plain.artifact.prefix), copy, { recursive: true });
    const manifest = await manifestOf(plain.artifact.prefix);
    for (const table of manifest.tables) if (table.name === 'measurements_2024') table.rows = 201;
    await fs.writeFile(path.join(copy, 'manifest.json'), JSON.stringify(manifest));
    for (const jobs of ['1', '4']) {
      const target = await fresh(`inherit_altered${jobs}`);
      const restore = await runCli(['restore', path.join(copy, 'manifest.json'), '--to', target.url, '--jobs', jobs, '--json'], env);
      assert.equal(restore.code, 10, restore.stderr);
      const document = JSON.parse(restore.stdout);
      assert.equal(document.error.code, 'RESTORE_FAILED');
      assert.equal(document.error.message, 'The restored database differs from the backup: public.measurements_2024 has 200 rows, the backup 201.');
    }
  });

  it('a failed `restore --json` prints one document on stdout; with --jobs, pg_restore’s error lines, not the end of its output', async () => {
    const plain = await backUp();
    const cases = [
      { jobs: '4', committed: '' },
      { jobs: '1', committed: ' (nothing was committed)' },
    ];
    for (const { jobs, committed } of cases) {
      // The database holds a function of the backup already: pg_restore fails creating it, and
      // its report ends with the function's 3,000-character body.
      const target = await fresh(`inherit_conflict${jobs}`);
      await adminQuery(`create function long_fn() returns text language sql as $fn$ select 'mine'::text $fn$`, [], target.url);
      const restore = await runCli(['restore', plain.id, '--to', target.url, '--jobs', jobs, '--json'], env);
      assert.equal(restore.code, 10, restore.stderr);
      const document = JSON.parse(restore.stdout) as { runId: string; kind: string; status: string; error: { code: string; message: string } };
      assert.deepEqual([document.runId, document.kind, document.status, document.error.code], [plain.id, 'restore', 'failed', 'RESTORE_FAILED']);
      assert.match(
        document.error.message,
        new RegExp(
          `^pg_restore exited with code 1${committed.replace(/[()]/g, '\\$&')}: (pg_restore: from TOC entry \\d+; \\d+ \\d+ FUNCTION long_fn\\(\\) postgres\\n)?pg_restore: error: could not execute query: ERROR:  function "long_fn" already exists with same argument types\\nCommand was: CREATE FUNCTION public\\.long_fn\\(\\)`,
        ),
        `--jobs ${jobs}: ${document.error.message}`,
      );
      assert.ok(document.error.message.length < 1500, `the command is cut short: ${document.error.message.length} characters`);
    }

    // A failure in the parallel phase (an index, refused by an event trigger of the target):
    // the server's DETAIL and HINT come with the error line.
    const target = await fresh('inherit_refused_index');
    await adminQuery(
      `create function refuse_index() returns event_trigger language plpgsql as $fn$
         begin raise exception 'indexes are refused here' using detail = 'an event trigger of this database', hint = 'drop the event trigger'; end $fn$;
       create event trigger refuse_index on ddl_command_end when tag in ('CREATE INDEX') execute function refuse_index();`,
      [],
      target.url,
    );
    const restore = await runCli(['restore', plain.id, '--to', target.url, '--jobs', '4', '--json'], env);
    assert.equal(restore.code, 10, restore.stderr);
    const message = (JSON.parse(restore.stdout) as { error: { message: string } }).error.message;
    assert.match(
      message,
      /^pg_restore exited with code 1: pg_restore: from TOC entry \d+; \d+ \d+ INDEX measurements_2024_v postgres\npg_restore: error: could not execute query: ERROR: {2}indexes are refused here\nDETAIL: {2}an event trigger of this database\nHINT: {2}drop the event trigger\n/,
    );
    assert.match(message, /Command was: CREATE INDEX measurements_2024_v ON public\.measurements_2024 USING btree \(v\);/);
  });

  it('reads pg_restore error reports out of interleaved, verbose or long output', () => {
    const errors = new PgRestoreErrors();
    for (const line of [
      'pg_restore: while PROCESSING TOC:',
      'pg_restore:pg_restore:  from TOC entry 3360; 1259 16505 INDEX t4_w postgres',
      'pg_restore: pg_restore: error: could not execute query: ERROR:  permission denied for schema app',
      'pg_restore: detail: Command was: CREATE INDEX t4_w ON app.t4 USING btree (w);',
      'pg_restore: warning: errors ignored on restore: 1',
      'a line that belongs to nothing',
      'pg_restore: error: a worker process died unexpectedly',
      '',
      '',
    ]) {
      errors.see(line);
    }
    assert.equal(
      errors.describe(),
      [
        'pg_restore: from TOC entry 3360; 1259 16505 INDEX t4_w postgres',
        'pg_restore: error: could not execute query: ERROR:  permission denied for schema app',
        'pg_restore: detail: Command was: CREATE INDEX t4_w ON app.t4 USING btree (w);',
        'pg_restore: error: a worker process died unexpectedly',
      ].join('\n'),
    );
    const none = new PgRestoreErrors();
    none.see('pg_restore: warning: something');
    assert.equal(none.describe(), null);
    const tail = lastLines(`${'first line\n'.repeat(300)}last line`, 100);
    assert.ok(tail.startsWith('first line\n') && tail.endsWith('last line') && tail.length <= 100, tail);
  });
});
