import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectionArgs } from '../src/pgtools/spawnPgTool.ts';
import { findPgTool } from '../src/pgtools/findPgTools.ts';
import { CustomArchiveScanner, writeDataOffsets } from '../src/pipeline/customArchiveScanner.ts';
import { adminQuery, createTestDatabase, type TestDatabase } from './support/pg.ts';

/**
 * The scanner against real pg_dump output: rows per table as the server counts them, however
 * the stream is cut, and data offsets that make a pipe-written archive what `pg_dump -f` writes.
 */

/** Values that stress COPY's text format and the archive's chunking. */
const awkwardSql = `
  create schema "odd schema";
  create table "odd schema"."Mixed Case" (id int primary key, note text);
  insert into "odd schema"."Mixed Case" select g, case g % 4 when 0 then E'line\\nbreak' when 1 then E'tab\\there' when 2 then E'back\\\\slash' else E'\\\\.' end from generate_series(1, 500) g;
  create table public.empty_table (id int);
  create table public.wide (id int, payload text);
  -- rows far larger than a pipe read (64 KiB) and than the scanner's buffers
  insert into public.wide select g, repeat(md5(g::text), 8000) from generate_series(1, 40) g;
  create table public.blobs (id int, data bytea);
  insert into public.blobs select g, decode(repeat(md5(g::text), 300), 'hex') from generate_series(1, 300) g;
  create table public.measurements (at date not null, value numeric) partition by range (at);
  create table public.measurements_2025 partition of public.measurements for values from ('2025-01-01') to ('2026-01-01');
  create table public.measurements_2026 partition of public.measurements for values from ('2026-01-01') to ('2027-01-01');
  insert into public.measurements select date '2025-01-01' + (g % 700), g / 7.0 from generate_series(1, 3000) g;
  create table public.plain (id bigserial primary key, body jsonb, created timestamptz default now());
  insert into public.plain (body) select jsonb_build_object('n', g, 's', repeat('x', g % 50)) from generate_series(1, 20000) g;
  select lo_from_bytea(0, decode(repeat('ab', 100000), 'hex'));
`;

async function pgDumpBytes(database: TestDatabase, extra: string[] = []): Promise<Buffer> {
  const server = await adminQuery<{ v: string }>(`select current_setting('server_version_num') as v`);
  const pgDump = await findPgTool('pg_dump', Math.floor(Number(server[0]!.v) / 10000));
  const connection = connectionArgs(database.url);
  const child = spawn(pgDump.path, ['--format=custom', '--compress=0', '--no-password', `--dbname=${connection.dbname}`, ...extra], {
    env: { ...process.env, ...connection.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const chunks: Buffer[] = [];
  for await (const chunk of child.stdout) chunks.push(chunk);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, 'pg_dump failed');
  return Buffer.concat(chunks);
}

async function serverCounts(database: TestDatabase): Promise<Array<{ schema: string; name: string; rows: number }>> {
  const tables = await adminQuery<{ schema: string; name: string }>(
    `select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%' order by 1, 2`,
    [],
    database.url,
  );
  const counted = [];
  for (const table of tables) {
    const rows = await adminQuery<{ n: string }>(`select count(*) as n from "${table.schema.replaceAll('"', '""')}"."${table.name.replaceAll('"', '""')}"`, [], database.url);
    counted.push({ ...table, rows: Number(rows[0]!.n) });
  }
  return counted.sort((a, b) => (a.schema === b.schema ? (a.name < b.name ? -1 : 1) : a.schema < b.schema ? -1 : 1));
}

/** Feeds `bytes` in pieces whose sizes cycle through `sizes`. */
function scan(bytes: Buffer, sizes: number[]): CustomArchiveScanner {
  const scanner = new CustomArchiveScanner();
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    scanner.write(bytes.subarray(at, at + size));
    at += size;
  }
  return scanner;
}

describe('custom-format archive scanner', () => {
  let database: TestDatabase;
  let archive: Buffer;
  let tmp: string;

  before(async () => {
    database = await createTestDatabase('scanner');
    await adminQuery(awkwardSql, [], database.url);
    archive = await pgDumpBytes(database);
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-scanner-'));
  });
  after(async () => {
    await database?.drop();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('counts every table’s rows as the server does, however the stream is cut', async () => {
    const expected = await serverCounts(database);
    assert.ok(
      expected.some((table) => table.rows === 0),
      'an empty table is part of the check',
    );
    for (const sizes of [[archive.length], [1 << 20], [65536], [4096, 13, 1], [1], [3, 7, 11, 100003]]) {
      // One byte at a time is slow: only over the start (TOC) and a prefix, then large pieces.
      const pieces = sizes.length === 1 && sizes[0] === 1 ? [1, 1, 1, 65536] : sizes;
      assert.deepEqual(scan(archive, pieces).tableRows(), expected, `pieces of ${pieces.join(', ')} bytes`);
    }
  });

  it('gives up, rather than guessing, on a truncated or foreign stream', () => {
    assert.equal(scan(archive.subarray(0, archive.length - 100), [65536]).tableRows(), null);
    assert.equal(scan(archive.subarray(0, archive.length - 100), [65536]).offsets(), null);
    assert.equal(scan(Buffer.from('PGDMX not an archive at all'), [8]).tableRows(), null);
    const compressed = new CustomArchiveScanner();
    assert.equal(compressed.tableRows(), null, 'nothing written: nothing known');
  });

  it('fills the data offsets of a pipe-written archive exactly where pg_dump -f puts them', async () => {
    const piped = path.join(tmp, 'piped.dump');
    await fs.writeFile(piped, archive);
    const scanner = scan(archive, [65536]);
    const filled = await writeDataOffsets(piped, scanner);
    assert.ok(filled >= 8, `offsets filled for every table with data (${filled})`);

    // pg_dump -f of the same database: the same bytes but for the header's timestamp, which
    // differs between two dumps; compare the two files with that field masked.
    const seekable = path.join(tmp, 'seekable.dump');
    const connection = connectionArgs(database.url);
    const server = await adminQuery<{ v: string }>(`select current_setting('server_version_num') as v`);
    const pgDump = await findPgTool('pg_dump', Math.floor(Number(server[0]!.v) / 10000));
    await new Promise<void>((resolve, reject) => {
      const child = spawn(pgDump.path, ['--format=custom', '--compress=0', '--no-password', `--dbname=${connection.dbname}`, `--file=${seekable}`], {
        env: { ...process.env, ...connection.env },
        stdio: 'inherit',
      });
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_dump exited with ${code}`))));
    });
    const [patched, reference] = await Promise.all([fs.readFile(piped), fs.readFile(seekable)]);
    assert.equal(patched.length, reference.length);
    const differing: number[] = [];
    for (let i = 0; i < patched.length; i++) if (patched[i] !== reference[i]) differing.push(i);
    // The creation time: 7 ints (sec, min, hour, mday, mon, year, isdst) right after the header,
    // within the first 100 bytes; nothing past the header may differ.
    assert.ok(
      differing.every((at) => at < 100),
      `bytes differ only in the header's timestamp (first difference past it: ${differing.find((at) => at >= 100)})`,
    );
  });
});
