import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackstopError } from '../core/errors.ts';
import type { Manifest, ManifestFile } from '../core/manifest.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';
import { findPgTool } from '../pgtools/findPgTools.ts';
import { parseToolVersion, serverMajorFromVersionNum } from '../pgtools/pickPgTool.ts';
import { connectionArgs, spawnPgTool, type PgConnection, type PgToolProcess } from '../pgtools/spawnPgTool.ts';
import type { Store } from '../storage/store.ts';
import { createAgeDecryptStream, type AgeIdentity } from './age.ts';
import { allOrFirstFailure } from './backupParallel.ts';
import { createDecompressor } from './compression.ts';
import { lastLines, PgRestoreErrors } from './pgRestoreErrors.ts';
import { assertNothingInTheWay } from './restoreCustomArchive.ts';
import { restoreInOneTransaction } from './restoreInOneTransaction.ts';
import { writeInto } from './writeInto.ts';
import type { RestoreInput, RestoreProgress, RestoreResult } from './restoreInput.ts';
import { assertCanDecrypt, spoolVerifiedFile } from './spoolVerifiedFile.ts';
import { countListedTables } from './sourceSnapshot.ts';
import { dataFileJobs } from './dataFileJobs.ts';

/**
 * Restores a parallel artifact (see backupParallel) in pg_restore's own order: the schema file
 * is spooled and checked against the manifest before anything touches the database (it is
 * small, and `pg_restore -j` needs a file it can seek). With several jobs its pre-data is restored in one
 * transaction; then every data file at once, each streamed from the store through the
 * decryptor and decompressor into its own `pg_restore --data-only --single-transaction`; then
 * post-data with `-j`. When the jobs outnumber the data files, the extra ones go to the largest
 * files (dataFileJobs): such a file is spooled and checked like the schema file, its data offsets
 * filled in from the manifest, and restored with `pg_restore --data-only --jobs k` (one
 * transaction per table, not per file). The rows of a data file's tables are counted once its transaction has
 * committed, and compared with the manifest at the end. A data file is checked (size, SHA-256, plain size) as it streams; a
 * mismatch fails the restore with ARTIFACT_CORRUPT. (Its last bytes are held back until the
 * check passes, and age and zstd reject damaged input on their own; a drill checks every
 * digest before it restores.)
 *
 * With one job it is all or nothing instead (see restoreInOneTransaction): the same parts,
 * as SQL, in one transaction, the rows counted before its commit.
 *
 * With several, not all or nothing: like any `--jobs` restore, a failure stops every pg_restore
 * and fails the restore with the first error, and the database keeps what was committed before
 * it (the pre-data, any data file whose transaction had ended, the post-data built so far).
 * Restore into an empty database, and drop it after a failure.
 */
export async function restoreParallel(input: RestoreInput): Promise<RestoreResult> {
  const signal = input.signal ?? new AbortController().signal;
  const parallel = input.manifest.parallel!;
  if ((input.schemas ?? []).length > 0 || (input.tables ?? []).length > 0 || input.clean) {
    throw new BackstopError(
      'INVALID_INPUT',
      'This backup was taken with --jobs (several files); restoring only some schemas or tables, or with --clean, is not supported for it. Restore all of it into an empty database.',
    );
  }
  const fileNamed = (name: string): ManifestFile => {
    const file = input.manifest.files.find((candidate) => candidate.name === name);
    if (!file) throw new BackstopError('ARTIFACT_CORRUPT', `The manifest in ${input.prefix} names ${name} but does not list it among its files.`);
    return file;
  };
  const schemaFile = fileNamed(parallel.schema);
  const dataFiles = parallel.data.map((data) => fileNamed(data.file));
  assertCanDecrypt(input.manifest, input.identities);

  const started = performance.now();
  const bytesTotal = input.manifest.files.reduce((sum, file) => sum + file.size, 0);
  const bytesRestoredTotal = input.manifest.files.reduce((sum, file) => sum + file.uncompressedSize, 0);
  let bytesRead = 0;
  let bytesRestored = 0;
  const report = (phase: RestoreProgress['phase']) => input.onProgress?.({ phase, bytesRead, bytesTotal, bytesRestored, bytesRestoredTotal, elapsedMs: performance.now() - started });

  const jobs = Math.max(1, input.jobs ?? parallel.data.length);
  const spoolPath = path.join(input.tmpDir ?? os.tmpdir(), `backstop-restore-${randomBytes(8).toString('hex')}.pgcustom`);
  const stopAll = new AbortController();
  const inner = AbortSignal.any([signal, stopAll.signal]);
  const running = new Set<PgToolProcess>();
  const stopTools = () => {
    for (const tool of running) void tool.terminate();
  };
  inner.addEventListener('abort', stopTools, { once: true });
  const checkRows = input.checkRows !== false;
  const counting: Array<Promise<Map<string, { rows: number | null }> | { error: unknown }>> = [];
  const spools: string[] = [];
  try {
    const client = await connectDatabase(input.toUrl);
    try {
      await assertNothingInTheWay(client, { schemas: [], tables: [] }, input.manifest.tables);
    } finally {
      await client.end().catch(() => {});
    }
    const dumpMajor = parseToolVersion(`(PostgreSQL) ${input.manifest.pgDump.version}`)?.major ?? serverMajorFromVersionNum(input.manifest.source.serverVersionNum);
    const pgRestore = await findPgTool('pg_restore', dumpMajor, input.pgTools, 'archive (made by pg_dump)');
    report('verifying');
    await spoolVerifiedFile({ store: input.store, prefix: input.prefix, file: schemaFile, manifest: input.manifest, spoolPath, signal: inner, identities: input.identities });
    bytesRead += schemaFile.size;
    input.onEvent?.('restore_verified', `${schemaFile.name}: size and SHA-256 match the manifest`);
    const spooledMs = performance.now() - started;

    report('restoring');
    // Each data file's tables are counted once its transaction has committed, while the other
    // files load and the indexes build, rather than all after the end (as the single-file
    // restore does with RestoredRowCheck). A count's failure waits for the end to be reported.
    const countFile = (index: number) => {
      if (!checkRows) return;
      const tables = tablesOfFile(input.manifest, index);
      if (tables.length === 0) return;
      counting.push(countListedTables(input.toUrl, tables, { connections: 1, signal: inner, serial: true }).catch((error: unknown) => ({ error })));
    };
    const owner = input.noOwner ? ['--no-owner', '--no-privileges'] : [];
    const feedFile = (file: ManifestFile) => (tool: PgToolProcess) =>
      streamVerifiedFile({
        store: input.store,
        prefix: input.prefix,
        file,
        manifest: input.manifest,
        identities: input.identities,
        signal: inner,
        into: tool,
        onStored: (bytes) => {
          bytesRead += bytes;
          report('restoring');
        },
        onPlain: (bytes) => {
          bytesRestored += bytes;
        },
      });

    if (jobs === 1) {
      // psql as new as pg_dump reads every meta-command pg_restore's text holds (\restrict).
      const psql = await findPgTool('psql', dumpMajor, input.pgTools, 'archive (made by pg_dump)');
      await restoreInOneTransaction({
        pgRestore: pgRestore.path,
        psql: psql.path,
        toUrl: input.toUrl,
        parts: [
          { what: `${schemaFile.name} (pre-data)`, args: ['--section=pre-data', ...owner, spoolPath] },
          ...dataFiles.map((file) => ({ what: file.name, args: ['--data-only', ...owner], feed: feedFile(file) })),
          { what: `${schemaFile.name} (post-data)`, args: ['--section=post-data', ...owner, spoolPath] },
        ],
        tables: checkRows ? input.manifest.tables : [],
        running,
        signal: inner,
        onPart: (what) => input.onEvent?.('restore_step', `${what}: in the transaction, not yet committed`),
      });
      input.onEvent?.('restore_step', `${input.manifest.files.length} files restored in one transaction${checkRows ? ', row counts checked before the commit' : ''}`);
      const doneMs = Math.round(performance.now() - started);
      return {
        tablesChecked: checkRows ? input.manifest.tables.length : 0,
        bytesRestored: bytesRestoredTotal,
        pgRestoreVersion: pgRestore.version,
        timings: { spooledMs: Math.round(spooledMs), pgRestoreDoneMs: doneMs, checkedMs: doneMs },
      };
    }

    const connection = connectionArgs(input.toUrl);
    const run = (args: string[], what: string, feed?: (tool: PgToolProcess) => Promise<void>) =>
      runPgRestore(pgRestore.path, [...args, ...owner, '--exit-on-error', '--no-password', `--dbname=${connection.dbname}`], connection, what, running, inner, feed);

    await run(['--section=pre-data', '--single-transaction', spoolPath], `${schemaFile.name} (pre-data)`);
    input.onEvent?.('restore_step', `${schemaFile.name}: pre-data restored`);
    const fileJobs = dataFileJobs(
      dataFiles.map((file) => ({ uncompressedSize: file.uncompressedSize, seekable: file.format === 'pg_dump-custom' && file.dataBlocks !== undefined })),
      jobs,
    );
    // A file given several jobs is spooled to local disk with its data offsets filled in
    // (pg_restore --jobs seeks, a pipe cannot), then restored table by table over as many
    // connections; the others stream, each in one transaction.
    const restoreSpooled = async (file: ManifestFile, fileJobs: number) => {
      const fileSpool = `${spoolPath}.${dataFiles.indexOf(file) + 1}`;
      spools.push(fileSpool);
      let stored = 0;
      await spoolVerifiedFile({
        store: input.store,
        prefix: input.prefix,
        file,
        manifest: input.manifest,
        spoolPath: fileSpool,
        signal: inner,
        identities: input.identities,
        onBytes: (bytes) => {
          bytesRead += bytes - stored;
          stored = bytes;
          report('restoring');
        },
      });
      input.onEvent?.('restore_verified', `${file.name}: size and SHA-256 match the manifest; spooled to restore with ${fileJobs} jobs`);
      await run(['--data-only', `--jobs=${fileJobs}`, fileSpool], file.name);
      bytesRestored += file.uncompressedSize;
      await fs.rm(fileSpool, { force: true });
    };
    await allOrFirstFailure(
      dataFiles.map((file, index) =>
        (fileJobs[index]! > 1 ? restoreSpooled(file, fileJobs[index]!) : run(['--data-only', '--single-transaction'], file.name, feedFile(file))).then(() => {
          input.onEvent?.('restore_step', `${file.name}${fileJobs[index]! > 1 ? ` (${fileJobs[index]} jobs)` : ''}: data restored`);
          countFile(index);
        }),
      ),
      stopAll,
    );
    await run(['--section=post-data', `--jobs=${jobs}`, spoolPath], `${schemaFile.name} (post-data)`);
    input.onEvent?.('restore_step', `${schemaFile.name}: post-data restored`);
    const pgRestoreDoneMs = performance.now() - started;
    const timings = () => ({ spooledMs: Math.round(spooledMs), pgRestoreDoneMs: Math.round(pgRestoreDoneMs), checkedMs: Math.round(performance.now() - started) });
    const restoredBytes = bytesRestoredTotal;
    if (!checkRows) return { tablesChecked: 0, bytesRestored: restoredBytes, pgRestoreVersion: pgRestore.version, timings: timings() };

    report('checking');
    const restored = new Map<string, { rows: number | null }>();
    for (const counted of await Promise.all(counting)) {
      if ('error' in counted) throw counted.error;
      for (const [name, count] of counted) restored.set(name, count);
    }
    const mismatches = rowMismatches(input.manifest, restored);
    if (mismatches.length > 0) throw new BackstopError('RESTORE_FAILED', `The restored database differs from the backup: ${mismatches.join('; ')}.`);
    return { tablesChecked: input.manifest.tables.length, bytesRestored: restoredBytes, pgRestoreVersion: pgRestore.version, timings: timings() };
  } catch (error) {
    stopAll.abort();
    await Promise.all([...running].map((tool) => tool.terminate()));
    // No count left reading the database the caller may drop next.
    await Promise.all(counting);
    if (signal.aborted) throw signal.reason;
    throw error;
  } finally {
    inner.removeEventListener('abort', stopTools);
    await Promise.all([spoolPath, ...spools].map((file) => fs.rm(file, { force: true })));
  }
}

/**
 * The manifest's tables whose data the parallel data file `index` holds: those it names, and
 * for the file that takes the rest, every table no other file names.
 */
function tablesOfFile(manifest: Manifest, index: number): Manifest['tables'] {
  const key = (table: { schema: string; name: string }) => `${table.schema}.${table.name}`;
  const data = manifest.parallel!.data;
  const named = (sets: typeof data) => new Set(sets.flatMap((set) => set.tables.map(key)));
  if (!data[index]!.rest) {
    const own = named([data[index]!]);
    return manifest.tables.filter((table) => own.has(key(table)));
  }
  const elsewhere = named(data.filter((_, other) => other !== index));
  return manifest.tables.filter((table) => !elsewhere.has(key(table)));
}

function rowMismatches(manifest: Manifest, restored: Map<string, { rows: number | null }>): string[] {
  const rowsOf = (table: { schema: string; name: string }) => restored.get(`${table.schema}.${table.name}`)?.rows ?? null;
  return manifest.tables
    .filter((table) => rowsOf(table) !== table.rows)
    .map((table) => `${table.schema}.${table.name} has ${rowsOf(table) ?? 'no table'} rows, the backup ${table.rows}`);
}

/**
 * One pg_restore to its end: fed by `feed` through its stdin when given. A failure of the feed
 * (a damaged file) is the finding, not pg_restore's complaint about its input ending early.
 */
async function runPgRestore(
  tool: string,
  args: string[],
  connection: PgConnection,
  what: string,
  running: Set<PgToolProcess>,
  signal: AbortSignal,
  feed?: (tool: PgToolProcess) => Promise<void>,
): Promise<void> {
  signal.throwIfAborted();
  const errors = new PgRestoreErrors();
  const restore = spawnPgTool(tool, args, connection, {
    stdin: feed !== undefined,
    onStderrLine: (line) => {
      errors.see(line);
      return false;
    },
  });
  running.add(restore);
  try {
    restore.child.stdout.resume();
    const feeding = feed
      ? feed(restore).then(
          () => null,
          (error: unknown) => ({ error }),
        )
      : Promise.resolve(null);
    const [fed, { code, signal: killedBy, stderr }] = await Promise.all([feeding, restore.exited]);
    signal.throwIfAborted();
    // The feed's own finding (a damaged file) first; then pg_restore's status, which says
    // more than the broken pipe its exit left the feed with.
    if (fed?.error instanceof BackstopError) throw fed.error;
    if (code !== 0) {
      throw new BackstopError(
        'RESTORE_FAILED',
        `pg_restore of ${what} ${killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`}: ${errors.describe() ?? (lastLines(stderr) || 'no output')}`,
      );
    }
    if (fed) throw fed.error;
  } finally {
    running.delete(restore);
  }
}

/**
 * Streams one stored file, checked as it passes (size and SHA-256 of the stored bytes, plain
 * size after decompression), into the tool's stdin. On a mismatch the tool's input is ended
 * with an error (destroyed), so pg_restore fails before its commit, and ARTIFACT_CORRUPT is
 * thrown. Memory is bounded by the stream stages' buffers.
 */
async function streamVerifiedFile(input: {
  store: Store;
  prefix: string;
  file: ManifestFile;
  manifest: Manifest;
  identities?: AgeIdentity[];
  signal: AbortSignal;
  into: PgToolProcess;
  onStored: (bytes: number) => void;
  onPlain: (bytes: number) => void;
}): Promise<void> {
  const { file, prefix } = input;
  const hash = createHash('sha256');
  let storedBytes = 0;
  let plainBytes = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      storedBytes += chunk.length;
      input.onStored(chunk.length);
      callback(null, chunk);
    },
  });
  const counting = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      plainBytes += chunk.length;
      input.onPlain(chunk.length);
      callback(null, chunk);
    },
    // The end of the input reaches pg_restore only once the stored file proved whole.
    flush(callback) {
      const digest = hash.digest('hex');
      if (storedBytes !== file.size || digest !== file.sha256) {
        callback(
          new BackstopError(
            'ARTIFACT_CORRUPT',
            `Checksum mismatch for ${prefix}${file.name}: stored ${storedBytes} bytes with SHA-256 ${digest}, the manifest recorded ${file.size} bytes with ${file.sha256}. The artifact is damaged; restore another backup.`,
          ),
        );
        return;
      }
      if (plainBytes !== file.uncompressedSize) {
        callback(new BackstopError('ARTIFACT_CORRUPT', `${prefix}${file.name} decompressed to ${plainBytes} bytes; the manifest says ${file.uncompressedSize}.`));
        return;
      }
      callback();
    },
  });
  const stdin = input.into.child.stdin!;
  // pg_restore that fails stops reading: its exit status says why, not the EPIPE.
  stdin.on('error', () => {});
  const decrypt = input.manifest.encryption ? [createAgeDecryptStream(input.identities ?? [])] : [];
  const decompressor = createDecompressor(input.manifest.compression.algorithm);
  // pg_restore may exit once it read the archive's last data block, before the stream ended:
  // the rest is still read and checked (its status says whether it failed).
  // A damaged file ends pg_restore's input without its end, so that pg_restore fails too.
  const into = (plain: AsyncIterable<Buffer>) =>
    writeInto(plain, stdin, { end: true, closed: () => null }).catch((error: unknown) => {
      stdin.destroy();
      throw error;
    });
  const stages = [...decrypt, ...(decompressor ? [decompressor] : [])];
  await pipeline(await input.store.get(prefix + file.name), hashing, ...(stages as []), counting, into, { signal: input.signal });
}
