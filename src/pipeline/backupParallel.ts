import { describeDatabase } from '../core/databaseUrl.ts';
import { BackstopError } from '../core/errors.ts';
import { artifactPrefix, type Manifest, type ManifestFile } from '../core/manifest.ts';
import type { Artifact } from '../core/artifact.ts';
import { planDataStreams, type SizedTable } from '../core/planDataStreams.ts';
import { exactPattern } from '../pgtools/exactPattern.ts';
import { discoverPgTools, findPgTool } from '../pgtools/findPgTools.ts';
import { serverMajorFromVersionNum } from '../pgtools/pickPgTool.ts';
import { connectionArgs, spawnPgTool, type PgToolProcess } from '../pgtools/spawnPgTool.ts';
import { parseRecipient } from './age.ts';
import { abandonAttempt, completeAttempt, DUMP_OPTIONS, dumpOutput, manifestHeader, storeStream, tableCounts, tap, trackBackupProgress, type BackupInput } from './backup.ts';
import { defaultCompression, fileExtension } from './compression.ts';
import { CustomArchiveScanner } from './customArchiveScanner.ts';
import { openSourceSnapshot, type SourceSnapshot, type TableCount } from './sourceSnapshot.ts';

interface PlannedFile {
  name: string;
  role: 'schema' | 'data';
  options: string[];
}

/**
 * The plan of a parallel dump, pure: one schema file (pre-data and post-data) and one data file
 * per set of tables. The first data file takes its tables by excluding every other file's, so
 * that it also holds what no table list names: sequence values, large objects, and tables a
 * list could miss. The others name their tables exactly.
 */
export function planParallelFiles(sets: readonly SizedTable[][], snapshot: string, suffix: string): PlannedFile[] {
  // A file of no named tables would, without --table, dump every table's data again.
  if (sets.slice(1).some((set) => set.length === 0)) throw new Error('planParallelFiles: a data file after the first has no tables');
  const shared = [...DUMP_OPTIONS, `--snapshot=${snapshot}`];
  const others = sets.slice(1).flat();
  return [
    { name: `schema.pgcustom${suffix}`, role: 'schema', options: [...shared, '--section=pre-data', '--section=post-data'] },
    ...sets.map((tables, index) => ({
      name: `data-${index + 1}.pgcustom${suffix}`,
      role: 'data' as const,
      options: [
        ...shared,
        '--section=data',
        ...(index === 0
          ? others.map((table) => `--exclude-table-data=${exactPattern(table.schema, table.name)}`)
          : tables.map((table) => `--table=${exactPattern(table.schema, table.name)}`)),
      ],
    })),
  ];
}

/**
 * The default profile with `jobs` above 1: N pg_dump streams of disjoint table sets, all from
 * the one snapshot exported on Backstop's own connection, which stays open until every stream
 * ends, plus the schema as its own file. Each stream goes through the same path as a single
 * dump (compress, encrypt, hash, store) into its own file, with no local staging; memory is
 * bounded per stream by that path's backpressure. Tables go to streams by size (see
 * planDataStreams). The first stream that fails stops the others, every file of the attempt
 * is deleted once all have stopped, and the run reports that first failure.
 */
export async function backupParallel(input: BackupInput & { jobs: number }): Promise<Artifact> {
  const started = performance.now();
  const compression = input.compression ?? defaultCompression;
  const recipients = (input.encryptTo ?? []).map(parseRecipient);
  const prefix = artifactPrefix(input.targetName, input.createdAt, input.runId, input.attempt);
  const { progress, report, fileProgress } = trackBackupProgress(started, input.onProgress, input.progressEveryMs);
  const suffix = `${fileExtension(compression.algorithm)}${recipients.length > 0 ? '.age' : ''}`;
  input.signal.throwIfAborted();
  discoverPgTools('pg_dump', input.pgTools).catch(() => {});

  const stopAll = new AbortController();
  const signal = AbortSignal.any([input.signal, stopAll.signal]);
  const running = new Set<PgToolProcess>();
  const stopDumps = () => {
    for (const dump of running) void dump.terminate();
  };
  signal.addEventListener('abort', stopDumps, { once: true });
  let source: SourceSnapshot | undefined;
  try {
    // A continuous target's base: every stream reads the temporary slot's snapshot.
    source = await openSourceSnapshot(input.databaseUrl, input.continuousBase ? { snapshot: input.continuousBase.snapshot } : {});
    progress.databaseBytes = source.databaseBytes;
    const snapshot = source.snapshot;
    if (snapshot === null) {
      throw new BackstopError(
        'DUMP_FAILED',
        `The source ${describeDatabase(input.databaseUrl)} cannot export a snapshot (a standby before PostgreSQL 10, or a pooler in transaction mode), and parallel streams without one would each dump another moment. Back it up with --jobs 1, or through a direct connection.`,
      );
    }
    const pgDump = await findPgTool('pg_dump', serverMajorFromVersionNum(source.serverVersionNum), input.pgTools);
    signal.throwIfAborted();
    const sets = planDataStreams(await source.tableSizes(), input.jobs);
    const planned = planParallelFiles(sets, snapshot, suffix);
    progress.phase = 'dumping';
    report();
    input.onEvent?.(
      'dump_started',
      `${sets.length} pg_dump ${pgDump.version} stream(s) and the schema of ${describeDatabase(input.databaseUrl)}, PostgreSQL ${source.serverVersion}, from snapshot ${snapshot}`,
      { pgDumpVersion: pgDump.version, serverVersion: source.serverVersion, database: source.database, streams: sets.length, snapshot },
    );

    const checksumming = input.checksums ? source.countRows(signal, { checksums: true }) : null;
    checksumming?.catch(() => {});
    const connection = connectionArgs(input.databaseUrl, `backstop:${input.runId}`);
    const dumpStarted = performance.now();
    const expectedBytes = source.databaseBytes;
    const dumpFile = async (file: PlannedFile): Promise<{ file: ManifestFile; rows: TableCount[] | null }> => {
      signal.throwIfAborted();
      const dump = spawnPgTool(pgDump.path, [...file.options, '--no-password', `--dbname=${connection.dbname}`], connection, { bufferedStdout: true });
      running.add(dump);
      try {
        const archive = new CustomArchiveScanner();
        const stored = await storeStream({
          store: input.store,
          key: prefix + file.name,
          content: tap(dumpOutput(dump), (chunk) => archive.write(chunk)),
          expectedBytes,
          compression,
          recipients,
          signal,
          onEvent: input.onEvent,
          ...fileProgress(),
        });
        input.onEvent?.('dump_stored', `stored ${file.name}: ${stored.size} bytes (${stored.uncompressedSize} before compression)`, {
          file: file.name,
          size: stored.size,
          sha256: stored.sha256,
        });
        const dataBlocks = archive.dataBlocks();
        return {
          file: {
            name: file.name,
            role: file.role,
            format: 'pg_dump-custom',
            size: stored.size,
            sha256: stored.sha256,
            uncompressedSize: stored.uncompressedSize,
            ...(dataBlocks && { dataBlocks }),
            dumpedBy: { tool: 'pg_dump', version: pgDump.version, options: file.options },
          },
          rows: archive.tableRows(),
        };
      } catch (error) {
        await dump.terminate();
        throw error;
      } finally {
        running.delete(dump);
      }
    };
    const dumped = await allOrFirstFailure(planned.map(dumpFile), stopAll);
    const dumpMs = Math.round(performance.now() - dumpStarted);

    const data = dumped.filter((result) => result.file.role === 'data');
    const archived = data.some((result) => result.rows === null) ? null : data.flatMap((result) => result.rows!);
    const tables = (await tableCounts(archived, checksumming, source, signal)).sort((a, b) => a.schema.localeCompare(b.schema) || a.name.localeCompare(b.name));

    progress.phase = 'manifest';
    report();
    const manifest: Manifest = {
      ...manifestHeader(input),
      createdAt: input.createdAt,
      source: { serverVersion: source.serverVersion, serverVersionNum: source.serverVersionNum, database: source.database },
      pgDump: { version: pgDump.version, options: [...DUMP_OPTIONS, `--snapshot=${snapshot}`], snapshot: true },
      compression: { algorithm: compression.algorithm, level: compression.level },
      encryption: recipients.length > 0 ? { algorithm: 'age', recipients } : null,
      files: dumped.map((result) => result.file),
      parallel: {
        jobs: input.jobs,
        schema: planned[0]!.name,
        data: sets.map((set, index) => ({ file: planned[index + 1]!.name, tables: set.map(({ schema, name }) => ({ schema, name })), rest: index === 0 })),
      },
      tables,
      timings: { dumpMs, totalMs: Math.round(performance.now() - started) },
    };
    return await completeAttempt(input, prefix, manifest, progress, report);
  } catch (error) {
    stopAll.abort();
    await Promise.all([...running].map((dump) => dump.terminate()));
    return await abandonAttempt(input, prefix, error);
  } finally {
    signal.removeEventListener('abort', stopDumps);
    await source?.close();
  }
}

/**
 * Waits for every stream. The first failure aborts `stopAll` (which stops the others) and is
 * what is thrown once all have settled, so nothing still writes when the caller deletes the
 * attempt's files; the others' "aborted" errors are only its consequence.
 */
export async function allOrFirstFailure<T>(work: Promise<T>[], stopAll: AbortController): Promise<T[]> {
  let first: { error: unknown } | null = null;
  const settled = await Promise.allSettled(
    work.map((promise) =>
      promise.catch((error: unknown) => {
        if (!first) {
          first = { error };
          stopAll.abort(error);
        }
        throw error;
      }),
    ),
  );
  if (first) throw (first as { error: unknown }).error;
  return settled.map((result) => (result as PromiseFulfilledResult<T>).value);
}
