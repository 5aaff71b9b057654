import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { BackstopError } from '../core/errors.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';
import { findPgTool } from '../pgtools/findPgTools.ts';
import { parseToolVersion, serverMajorFromVersionNum, type PgToolCandidate } from '../pgtools/pickPgTool.ts';
import { connectionArgs, spawnPgTool, type PgToolProcess } from '../pgtools/spawnPgTool.ts';
import { assertCanDecrypt, spoolVerifiedFile } from './spoolVerifiedFile.ts';
import { CustomArchiveScanner, type TocObject } from './customArchiveScanner.ts';
import { lastLines, PgRestoreErrors } from './pgRestoreErrors.ts';
import { RestoredRowCheck } from './restoredRowCheck.ts';
import type { RestoreInput, RestoreProgress, RestoreResult } from './restoreInput.ts';
import { countListedTables } from './sourceSnapshot.ts';
import { watchRestoredBytes } from './watchRestoredBytes.ts';

/** Objects in non-system schemas that a restore would collide with. */
const userObjectsSql = `
  select count(*)::int as count from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and n.nspname not in ('pg_catalog', 'information_schema')
    and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')`;

/**
 * Restores a custom-format artifact (the default profile): the stored file is checked against
 * the manifest's size and SHA-256 while it is decompressed into a spool file, and pg_restore
 * runs only on a verified spool. With one job the restore is a single transaction, so it is all
 * or nothing; with several, each table's row count is compared with the manifest once its data
 * is in.
 */
export async function restoreCustomArchive(input: RestoreInput): Promise<RestoreResult> {
  const signal = input.signal ?? new AbortController().signal;
  const dumpFile = input.manifest.files.find((file) => file.role === 'dump' && file.database === input.database);
  if (!dumpFile)
    throw new BackstopError('ARTIFACT_CORRUPT', `The manifest in ${input.prefix} lists no dump file${input.database === undefined ? '' : ` of database "${input.database}"`}.`);
  assertCanDecrypt(input.manifest, input.identities);

  const started = performance.now();
  const report = (phase: RestoreProgress['phase'], bytesRead: number, bytesRestored = 0) =>
    input.onProgress?.({
      phase,
      bytesRead,
      bytesTotal: dumpFile.size,
      bytesRestored,
      bytesRestoredTotal: dumpFile.uncompressedSize,
      elapsedMs: performance.now() - started,
    });
  // The spool (read, check, decompress) starts at once; the checks of the target database and
  // the choice of pg_restore run meanwhile. Nothing touches the target before both are done.
  const spoolPath = path.join(input.tmpDir ?? os.tmpdir(), `backstop-restore-${randomBytes(8).toString('hex')}.pgcustom`);
  const stopSpool = new AbortController();
  const scanner = new CustomArchiveScanner();
  const spooling = spoolVerifiedFile({
    store: input.store,
    prefix: input.prefix,
    file: dumpFile,
    manifest: input.manifest,
    spoolPath,
    signal: AbortSignal.any([signal, stopSpool.signal]),
    identities: input.identities,
    onBytes: (bytes) => report('verifying', bytes),
    scanner,
  });
  spooling.catch(() => {});

  let client: pg.Client | undefined;
  let restore: PgToolProcess | undefined;
  let rowCheck: RestoredRowCheck | undefined;
  const stop = () => void restore?.terminate();
  signal.addEventListener('abort', stop, { once: true });
  try {
    const selection = { schemas: input.schemas ?? [], tables: input.tables ?? [] };
    const restoredTables = input.manifest.tables.filter((table) => table.database === input.database && isSelected(table, selection));
    let pgRestore: PgToolCandidate;
    try {
      // With --create the database does not exist yet (the server's restore checked that), and
      // no session of Backstop's may hold the database pg_restore drops or creates from.
      if (!input.createFrom) {
        client = await connectDatabase(input.toUrl);
        if (!input.clean) await assertNothingInTheWay(client, selection, restoredTables);
      }
      const dumpMajor = parseToolVersion(`(PostgreSQL) ${input.manifest.pgDump.version}`)?.major ?? serverMajorFromVersionNum(input.manifest.source.serverVersionNum);
      pgRestore = await findPgTool('pg_restore', dumpMajor, input.pgTools, 'archive (made by pg_dump)');
    } catch (error) {
      stopSpool.abort(error);
      throw error;
    }
    const bytesRestored = await spooling;
    assertSelectionInArchive(selection, scanner.tocObjects());
    const spooledMs = performance.now() - started;
    report('restoring', dumpFile.size);
    input.onEvent?.('restore_verified', `${dumpFile.name}: size and SHA-256 match the manifest`);

    const jobs = Math.max(1, input.jobs ?? 1);
    const checkRows = input.checkRows !== false;
    // In parallel, each table is counted as soon as its data is in (see RestoredRowCheck);
    // a single-transaction restore shows nothing to other connections before it commits.
    rowCheck = checkRows && jobs > 1 ? new RestoredRowCheck(input.toUrl, restoredTables, scanner.tableEntries(), signal) : undefined;
    const connection = connectionArgs(input.createFrom ?? input.toUrl);
    const args = [
      ...(rowCheck ? ['--verbose'] : []),
      '--exit-on-error',
      '--no-password',
      `--dbname=${connection.dbname}`,
      // pg_restore refuses --single-transaction with --create (CREATE DATABASE cannot run in one).
      ...(input.createFrom ? ['--create'] : []),
      ...(jobs > 1 ? [`--jobs=${jobs}`] : input.createFrom ? [] : ['--single-transaction']),
      ...(input.clean ? ['--clean', '--if-exists'] : []),
      ...(input.noOwner ? ['--no-owner', '--no-privileges'] : []),
      ...selection.schemas.map((schema) => `--schema=${schema}`),
      ...selection.tables.map((table) => `--table=${table}`),
      spoolPath,
    ];
    signal.throwIfAborted();
    // pg_restore --schema restores the schema's objects but not the schema itself.
    for (const schema of selection.schemas) await client!.query(`create schema if not exists ${client!.escapeIdentifier(schema)}`);
    const errors = new PgRestoreErrors();
    const check = rowCheck;
    const onStderrLine = (line: string) => {
      if (check?.onStderrLine(line)) return true;
      errors.see(line);
      return false;
    };
    restore = spawnPgTool(pgRestore.path, args, connection, { onStderrLine });
    restore.child.stdout.resume();
    const stopWatching = watchRestoredBytes(restore.child.pid, dumpFile.uncompressedSize, (bytes) => report('restoring', dumpFile.size, bytes));
    const { code, signal: killedBy, stderr } = await restore.exited.finally(stopWatching);
    signal.throwIfAborted();
    if (code !== 0) {
      throw new BackstopError(
        'RESTORE_FAILED',
        `pg_restore ${killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`}${jobs === 1 && !input.createFrom ? ' (nothing was committed)' : ''}: ${errors.describe() ?? (lastLines(stderr) || 'no output')}`,
      );
    }

    const pgRestoreDoneMs = performance.now() - started;
    const timings = () => ({ spooledMs: Math.round(spooledMs), pgRestoreDoneMs: Math.round(pgRestoreDoneMs), checkedMs: Math.round(performance.now() - started) });
    if (!checkRows) return { tablesChecked: 0, bytesRestored, pgRestoreVersion: pgRestore.version, timings: timings() };
    report('checking', dumpFile.size, dumpFile.uncompressedSize);
    const restored = rowCheck ? await rowCheck.finish(restoredTables, jobs) : await countListedTables(input.toUrl, restoredTables, { connections: jobs, signal });
    const rowsOf = (table: { schema: string; name: string }) => restored.get(`${table.schema}.${table.name}`)?.rows ?? null;
    const mismatches = restoredTables
      .filter((table) => rowsOf(table) !== table.rows)
      .map((table) => `${table.schema}.${table.name} has ${rowsOf(table) ?? 'no table'} rows, the backup ${table.rows}`);
    if (mismatches.length > 0) {
      throw new BackstopError('RESTORE_FAILED', `The restored database differs from the backup: ${mismatches.join('; ')}.`);
    }
    return { tablesChecked: restoredTables.length, bytesRestored, pgRestoreVersion: pgRestore.version, timings: timings() };
  } catch (error) {
    await restore?.terminate();
    if (signal.aborted) throw signal.reason;
    throw error;
  } finally {
    signal.removeEventListener('abort', stop);
    stopSpool.abort();
    await spooling.catch(() => {});
    await client?.end().catch(() => {});
    await rowCheck?.close();
    await fs.rm(spoolPath, { force: true });
  }
}

interface Selection {
  schemas: string[];
  tables: string[];
}

function isSelected(table: { schema: string; name: string }, selection: Selection): boolean {
  return (selection.schemas.length === 0 || selection.schemas.includes(table.schema)) && (selection.tables.length === 0 || selection.tables.includes(table.name));
}

/** What `pg_restore --table` matches: "table" includes views, materialized views, sequences and foreign tables. */
const RELATION_KINDS = new Set(['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'SEQUENCE', 'FOREIGN TABLE']);

/**
 * pg_restore restores nothing, and says nothing, for a --schema or --table the archive does
 * not hold (a typo, another backup's table): refused, naming what the archive holds, before
 * the database is touched. An archive whose TOC could not be read is left to pg_restore.
 */
export function assertSelectionInArchive(selection: Selection, objects: readonly TocObject[]): void {
  if (objects.length === 0 || (selection.schemas.length === 0 && selection.tables.length === 0)) return;
  const schemas = [...new Set(objects.flatMap((object) => (object.desc === 'SCHEMA' ? [object.name] : object.schema ? [object.schema] : [])))].sort();
  const relations = objects.filter((object) => RELATION_KINDS.has(object.desc) && (selection.schemas.length === 0 || selection.schemas.includes(object.schema ?? '')));
  const tables = [...new Set(relations.map((object) => object.name))].sort();
  const problems = [
    ...selection.schemas.filter((schema) => !schemas.includes(schema)).map((schema) => `no schema "${schema}" (it holds ${listed(schemas)})`),
    ...selection.tables
      .filter((table) => !tables.includes(table))
      .map((table) => `no table "${table}"${selection.schemas.length > 0 ? ` in ${selection.schemas.join(', ')}` : ''} (it holds ${listed(tables)})`),
  ];
  if (problems.length > 0) {
    throw new BackstopError('INVALID_INPUT', `The backup holds ${problems.join(', and ')}. Pass --schema and --table names the backup holds, or neither to restore everything.`);
  }
}

function listed(names: string[]): string {
  if (names.length === 0) return 'none';
  return names.length > 10 ? `${names.slice(0, 10).join(', ')}, …` : names.join(', ');
}

/**
 * Without --clean, a restore must not collide with what is there: the whole database must be
 * empty, or, for a partial restore, none of the selected tables may exist yet.
 */
export async function assertNothingInTheWay(client: pg.Client, selection: Selection, restoredTables: Array<{ schema: string; name: string }>): Promise<void> {
  if (selection.schemas.length === 0 && selection.tables.length === 0) {
    const { rows } = await client.query<{ count: number }>(userObjectsSql);
    if ((rows[0]?.count ?? 0) > 0) {
      throw new BackstopError(
        'RESTORE_TARGET_NOT_EMPTY',
        `The database to restore into already holds ${rows[0]!.count} tables, views or sequences. Restore into an empty database, or pass --clean to drop and recreate the objects the backup contains.`,
      );
    }
    return;
  }
  const { rows } = await client.query<{ name: string }>(
    `select schemaname || '.' || tablename as name from pg_tables
     where (schemaname || '.' || tablename) = any($1::text[]) order by 1`,
    [restoredTables.map((table) => `${table.schema}.${table.name}`)],
  );
  if (rows.length > 0) {
    throw new BackstopError(
      'RESTORE_TARGET_NOT_EMPTY',
      `These tables already exist in the database to restore into: ${rows.map((row) => row.name).join(', ')}. Drop them, restore elsewhere, or pass --clean.`,
    );
  }
}
