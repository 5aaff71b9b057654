import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findPgTool } from '../src/pgtools/findPgTools.ts';
import { connectionArgs, spawnPgTool } from '../src/pgtools/spawnPgTool.ts';
import { CustomArchiveScanner, writeDataOffsets } from '../src/pipeline/customArchiveScanner.ts';
import { RestoredRowCheck } from '../src/pipeline/restoredRowCheck.ts';
import { adminQuery, createSampleDatabase, createTestDatabase, type TestDatabase } from './support/pg.ts';

/**
 * The parallel restore's row check: tables are counted as pg_restore --verbose reports their
 * data committed, the rest when it has finished; its progress lines never crowd out an error.
 */
describe('restored row check (pg_restore --jobs --verbose)', () => {
  let source: TestDatabase;
  let directory: string;
  let archive: string;
  let scanner: CustomArchiveScanner;
  const tables = [
    { schema: 'audit', name: 'log', rows: 50 },
    { schema: 'public', name: 'customers', rows: 200 },
    { schema: 'public', name: 'orders', rows: 3000 },
  ];
  const major = async () => Math.floor(Number((await adminQuery<{ v: string }>(`select current_setting('server_version_num') as v`))[0]!.v) / 10000);

  before(async () => {
    source = await createSampleDatabase(3000);
    directory = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-rowcheck-'));
    archive = path.join(directory, 'dump.pgcustom');
    // As a backup makes it: pg_dump to a pipe, scanned on the way, offsets written afterwards.
    const pgDump = await findPgTool('pg_dump', await major());
    const connection = connectionArgs(source.url);
    const dump = spawnPgTool(pgDump.path, ['--format=custom', '--compress=0', '--no-password', `--dbname=${connection.dbname}`], connection.env);
    scanner = new CustomArchiveScanner();
    const chunks: Buffer[] = [];
    for await (const chunk of dump.child.stdout) {
      scanner.write(chunk as Buffer);
      chunks.push(chunk as Buffer);
    }
    assert.equal((await dump.exited).code, 0);
    await fs.writeFile(archive, Buffer.concat(chunks));
    await writeDataOffsets(archive, scanner);
    assert.deepEqual(scanner.tableRows(), tables);
  });

  after(async () => {
    await source?.drop();
    await fs.rm(directory, { recursive: true, force: true });
  });

  it('counts each table as its data is reported in, and the rest at the end', async () => {
    const target = await createTestDatabase('rowcheck');
    try {
      const pgRestore = await findPgTool('pg_restore', await major());
      const check = new RestoredRowCheck(target.url, tables, scanner.tableEntries(), new AbortController().signal);
      const reported: string[] = [];
      const connection = connectionArgs(target.url);
      const restore = spawnPgTool(
        pgRestore.path,
        ['--verbose', '--jobs=2', '--exit-on-error', '--no-owner', '--no-password', `--dbname=${connection.dbname}`, archive],
        connection.env,
        {
          onStderrLine: (line) => {
            if (/TABLE DATA/.test(line) && /finished item/.test(line)) reported.push(line);
            return check.onStderrLine(line);
          },
        },
      );
      const { code, stderr } = await restore.exited;
      assert.equal(code, 0, stderr);
      assert.equal(reported.length, 3, 'pg_restore reports every table whose data it loaded');
      assert.doesNotMatch(stderr, /finished item|processing data|launching item/, 'progress lines are consumed, not kept for error messages');
      const counts = await check.finish(tables, 2);
      assert.deepEqual(
        tables.map((table) => counts.get(`${table.schema}.${table.name}`)?.rows),
        tables.map((table) => table.rows),
      );
      await check.close();
    } finally {
      await target.drop();
    }
  });

  it('a table no line reported is counted at the end; one missing from the database counts as absent', async () => {
    const target = await createTestDatabase('rowcheck');
    try {
      await adminQuery(`create table customers (id int); insert into customers select generate_series(1, 7);`, [], target.url);
      const check = new RestoredRowCheck(target.url, tables, scanner.tableEntries(), new AbortController().signal);
      const customers = scanner.tableEntries().find((entry) => entry.name === 'customers')!;
      // A progress line is consumed; an error line and its context are kept.
      assert.equal(check.onStderrLine(`pg_restore: finished item ${customers.dumpId} TABLE DATA customers`), true);
      assert.equal(check.onStderrLine('pg_restore: error: could not execute query: ERROR:  relation "x" already exists'), false);
      assert.equal(check.onStderrLine('Command was: CREATE TABLE x ();'), false);
      const counts = await check.finish(tables, 2);
      assert.deepEqual(Object.fromEntries(counts), {
        'public.customers': { rows: 7 },
        'audit.log': { rows: null },
        'public.orders': { rows: null },
      });
      await check.close();
    } finally {
      await target.drop();
    }
  });

  it('a count that fails is reported by finish, not lost', async () => {
    const check = new RestoredRowCheck('postgres://nobody@127.0.0.1:1/none', tables, scanner.tableEntries(), new AbortController().signal);
    const log = scanner.tableEntries().find((entry) => entry.name === 'log')!;
    check.onStderrLine(`pg_restore: finished item ${log.dumpId} TABLE DATA log`);
    await assert.rejects(check.finish(tables, 1));
    await check.close();
  });
  it('progress lines interleaved by parallel jobs are still consumed, and a finished table still counted at once', async () => {
    const check = new RestoredRowCheck('postgres://nobody@127.0.0.1:1/none', tables, scanner.tableEntries(), new AbortController().signal);
    const log = scanner.tableEntries().find((entry) => entry.name === 'log')!;
    // Two jobs' writes met in one line: the table it names is queued (and its count, against
    // an unreachable server, fails: the proof that it was queued before finish).
    assert.equal(check.onStderrLine(`pg_restore:pg_restore:  finished item ${log.dumpId} TABLE DATA log`), true);
    assert.equal(check.onStderrLine('creating CONSTRAINT "audit.log log_pkey"'), true);
    assert.equal(check.onStderrLine(' executing SEQUENCE SET log_id_seq'), true);
    assert.equal(check.onStderrLine('pg_restore: error: could not execute query: ERROR:  permission denied'), false);
    await assert.rejects(check.finish([], 1));
    await check.close();
  });
});
