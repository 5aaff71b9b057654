import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackstopError } from '../core/errors.ts';
import { describeDatabase } from '../core/databaseUrl.ts';
import { MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, artifactPrefix, manifestSchema, type Manifest, type ManifestFile } from '../core/manifest.ts';
import { BACKSTOP_VERSION } from '../version.ts';
import type { Artifact } from '../core/artifact.ts';
import { discoverPgTools, findPgTool, type PgToolSearch } from '../pgtools/findPgTools.ts';
import { serverMajorFromVersionNum } from '../pgtools/pickPgTool.ts';
import { connectionArgs, spawnPgTool, type PgToolProcess } from '../pgtools/spawnPgTool.ts';
import type { PutOptions, Store, StoredObject } from '../storage/store.ts';
import { createAgeEncryptStream, parseRecipient } from './age.ts';
import { coalesceChunks } from './coalesceChunks.ts';
import { createCompressor, defaultCompression, fileExtension, type CompressionSettings } from './compression.ts';
import { CustomArchiveScanner } from './customArchiveScanner.ts';
import { readManifest } from './readManifest.ts';
import { collectHeapEvery, FULL_EVERY_BYTES, YOUNG_EVERY_BYTES } from './heapCollector.ts';
import { openSourceSnapshot, type SourceSnapshot, type TableCount } from './sourceSnapshot.ts';

export interface BackupProgress {
  phase: 'connecting' | 'dumping' | 'manifest' | 'done';
  bytesDumped: number;
  bytesStored: number;
  rateBytesPerSecond: number;
  elapsedMs: number;
  /** The source database's size on disk (pg_database_size), once connected: a first backup's estimate. */
  databaseBytes: number | null;
}

export interface BackupInput {
  runId: string;
  attempt: number;
  targetName: string;
  /** The target's catalog id, recorded in the manifest so that the backup names its target by more than a name. */
  targetId?: string;
  /** Run creation time from the database; names the artifact's folder. */
  createdAt: string;
  databaseUrl: string;
  store: Store;
  compression?: CompressionSettings;
  /** Record a content checksum per table in the manifest (costs a read of every row). */
  checksums?: boolean;
  /**
   * Default profile: pg_dump streams at once, each of its own tables, from one snapshot (see
   * backupParallel). 1 or absent: one archive. The server profile has its own (databases at once).
   */
  jobs?: number;
  /** age recipients (public keys); empty or absent: not encrypted. */
  encryptTo?: string[];
  pgTools?: PgToolSearch;
  signal: AbortSignal;
  onProgress?: (progress: BackupProgress) => void;
  /** Least time between two progress reports while bytes flow (default PROGRESS_EVERY_MS). */
  progressEveryMs?: number;
  onEvent?: RunEventSink;
  /**
   * A continuous target's base backup: the dump reads the snapshot a replication slot exported
   * (held open by the caller until the backup ends), and the manifest records the target's
   * slot and that snapshot's consistent LSN, where the change stream takes over.
   */
  continuousBase?: ContinuousBase;
}

export interface ContinuousBase {
  /** The target's permanent slot, whose change stream continues this base. */
  slot: string;
  /** The exported snapshot to dump (a temporary slot's). */
  snapshot: string;
  consistentLsn: string;
  /** The tables the target's publication held (`schema.table`): what the change stream follows from this base. */
  tables?: string[];
}

/**
 * Where a pipeline reports run events. The promise, when there is one, settles once the event
 * is recorded: a multipart upload's id is recorded before its first part is sent.
 */
export type RunEventSink = (kind: string, message: string, data?: Record<string, unknown>) => void | Promise<void>;

export const DUMP_OPTIONS = ['--format=custom', '--compress=0'];

/**
 * pg_dump → zstd → store, hashed as it streams; manifest last, read back and checked. On any
 * failure or abort, pg_dump's whole process group is stopped and every object written under
 * the run's prefix is deleted, so a prefix without a complete manifest never survives a run
 * that Backstop saw fail.
 */
export async function backupDatabase(input: BackupInput): Promise<Artifact> {
  const started = performance.now();
  const compression = input.compression ?? defaultCompression;
  const recipients = (input.encryptTo ?? []).map(parseRecipient);
  const prefix = artifactPrefix(input.targetName, input.createdAt, input.runId, input.attempt);
  const { progress, report, fileProgress } = trackBackupProgress(started, input.onProgress, input.progressEveryMs);
  input.signal.throwIfAborted();
  try {
    const dumpFile = `dump.pgcustom${fileExtension(compression.algorithm)}${recipients.length > 0 ? '.age' : ''}`;
    const dumped = await dumpDatabaseFile({
      databaseUrl: input.databaseUrl,
      applicationName: `backstop:${input.runId}`,
      store: input.store,
      key: prefix + dumpFile,
      compression,
      recipients,
      checksums: input.checksums === true,
      snapshot: input.continuousBase?.snapshot,
      pgTools: input.pgTools,
      signal: input.signal,
      onEvent: input.onEvent,
      onOpened: (source) => {
        progress.databaseBytes = source.databaseBytes;
      },
      onDumpStarted: () => {
        progress.phase = 'dumping';
        report();
      },
      ...fileProgress(),
      onStored: report,
    });

    progress.phase = 'manifest';
    report();
    const manifest: Manifest = {
      ...manifestHeader(input),
      createdAt: input.createdAt,
      source: dumped.source,
      pgDump: dumped.pgDump,
      compression: { algorithm: compression.algorithm, level: compression.level },
      encryption: recipients.length > 0 ? { algorithm: 'age', recipients } : null,
      files: [{ ...dumped.file, name: dumpFile }],
      tables: dumped.tables,
      timings: { dumpMs: dumped.dumpMs, totalMs: Math.round(performance.now() - started) },
    };
    return await completeAttempt(input, prefix, manifest, progress, report);
  } catch (error) {
    return await abandonAttempt(input, prefix, error);
  }
}

export interface DatabaseFileInput {
  databaseUrl: string;
  /** Shown in pg_stat_activity: an operator (and the tests) find the dump by the run id in it. */
  applicationName: string;
  store: Store;
  /** The file's full key in the store. */
  key: string;
  compression: CompressionSettings;
  /** age recipients, already parsed; empty: not encrypted. */
  recipients: string[];
  checksums: boolean;
  /** pg_dump options besides the archive format and the snapshot (the server profile's --create). */
  extraOptions?: string[];
  /** An exported snapshot to read instead of one of its own (a continuous target's base). */
  snapshot?: string;
  pgTools?: PgToolSearch;
  signal: AbortSignal;
  onEvent?: RunEventSink;
  onOpened?: (source: SourceSnapshot) => void;
  onDumpStarted?: () => void;
  onContentBytes?: (bytes: number) => void;
  onStoredBytes?: (bytes: number) => void;
  onStored?: () => void;
}

export interface DumpedDatabase {
  file: ManifestFile;
  tables: TableCount[];
  source: Manifest['source'];
  pgDump: Manifest['pgDump'];
  dumpMs: number;
}

/**
 * One database as one stored custom-format archive: a snapshot is opened and exported, pg_dump
 * reads it, its output is scanned (rows per table, data block offsets) and stored through
 * `storeStream`. The row counts are the archive's (with checksums, checked against the
 * snapshot's). pg_dump's process group is stopped on failure or abort; deleting what was
 * stored is the caller's, which owns the prefix.
 */
export async function dumpDatabaseFile(input: DatabaseFileInput): Promise<DumpedDatabase> {
  // Finding the installed pg_dumps (a --version each) runs while the snapshot is opened: only
  // the choice among them waits for the server's version.
  discoverPgTools('pg_dump', input.pgTools).catch(() => {});
  const source = await openSourceSnapshot(input.databaseUrl, input.snapshot !== undefined ? { snapshot: input.snapshot } : {});
  input.onOpened?.(source);
  let dump: PgToolProcess | undefined;
  const stopDump = () => void dump?.terminate();
  input.signal.addEventListener('abort', stopDump, { once: true });
  try {
    const pgDump = await findPgTool('pg_dump', serverMajorFromVersionNum(source.serverVersionNum), input.pgTools);
    input.signal.throwIfAborted();
    const connection = connectionArgs(input.databaseUrl, input.applicationName);
    const options = [...DUMP_OPTIONS, ...(input.extraOptions ?? []), ...(source.snapshot ? [`--snapshot=${source.snapshot}`] : [])];
    dump = spawnPgTool(pgDump.path, [...options, '--no-password', `--dbname=${connection.dbname}`], connection, { bufferedStdout: true });
    input.onDumpStarted?.();
    input.onEvent?.('dump_started', `pg_dump ${pgDump.version} of ${describeDatabase(input.databaseUrl)}, PostgreSQL ${source.serverVersion}`, {
      pgDumpVersion: pgDump.version,
      serverVersion: source.serverVersion,
      database: source.database,
    });

    // Rows are counted in the archive as it streams past (free for the source server);
    // checksums need the rows themselves, read on the snapshot's connection meanwhile.
    const archive = new CustomArchiveScanner();
    const checksumming = input.checksums ? source.countRows(input.signal, { checksums: true }) : null;
    checksumming?.catch(() => {});
    const dumpStarted = performance.now();
    const name = input.key.slice(input.key.lastIndexOf('/') + 1);
    let bytesDumped = 0;
    const stored = await storeStream({
      store: input.store,
      key: input.key,
      content: tap(dumpOutput(dump), (chunk) => archive.write(chunk)),
      // A dump is rarely larger than the database on disk, and compressed it is smaller.
      expectedBytes: source.databaseBytes,
      compression: input.compression,
      recipients: input.recipients,
      signal: input.signal,
      onEvent: input.onEvent,
      onContentBytes: (bytes) => {
        bytesDumped += bytes;
        input.onContentBytes?.(bytes);
      },
      onStoredBytes: input.onStoredBytes,
    });
    const dumpMs = Math.round(performance.now() - dumpStarted);
    input.onStored?.();
    input.onEvent?.('dump_stored', `stored ${name}: ${stored.size} bytes (${bytesDumped} before compression)`, {
      file: name,
      size: stored.size,
      sha256: stored.sha256,
    });

    const tables = await tableCounts(archive.tableRows(), checksumming, source, input.signal);
    // A restore fills these into its spool without scanning the whole archive again.
    const dataBlocks = archive.dataBlocks();
    return {
      file: {
        name,
        role: 'dump',
        format: 'pg_dump-custom',
        size: stored.size,
        sha256: stored.sha256,
        uncompressedSize: bytesDumped,
        ...(dataBlocks && { dataBlocks }),
      },
      tables,
      source: { serverVersion: source.serverVersion, serverVersionNum: source.serverVersionNum, database: source.database },
      pgDump: { version: pgDump.version, options, snapshot: source.snapshot !== null },
      dumpMs,
    };
  } catch (error) {
    await dump?.terminate();
    if (input.signal.aborted) throw input.signal.reason;
    throw error;
  } finally {
    input.signal.removeEventListener('abort', stopDump);
    await source.close();
  }
}

/**
 * The manifest's tables: rows as the archive holds them. With checksums, the snapshot's
 * count must agree with the archive's, table by table, or the backup fails. Should the
 * archive be one the scanner cannot follow, the rows are counted in the dump's snapshot.
 */
export async function tableCounts(archived: TableCount[] | null, checksumming: Promise<TableCount[]> | null, source: SourceSnapshot, signal: AbortSignal): Promise<TableCount[]> {
  if (checksumming === null) return archived ?? (await source.countRows(signal));
  const counted = await checksumming;
  if (archived === null) return counted;
  const archivedRows = new Map(archived.map((table) => [`${table.schema}.${table.name}`, table.rows]));
  const differing = counted.filter((table) => {
    const rows = archivedRows.get(`${table.schema}.${table.name}`);
    return rows !== undefined && rows !== table.rows;
  });
  if (differing.length > 0) {
    const described = differing.map((table) => `${table.schema}.${table.name}: ${archivedRows.get(`${table.schema}.${table.name}`)} rows in the archive, ${table.rows} in the snapshot`);
    throw new BackstopError('DUMP_FAILED', `The dump does not hold what its snapshot holds: ${described.join('; ')}.`);
  }
  const checksums = new Map(counted.map((table) => [`${table.schema}.${table.name}`, table.checksum]));
  return archived.map((table) => {
    const checksum = checksums.get(`${table.schema}.${table.name}`);
    return checksum === undefined ? table : { ...table, checksum };
  });
}

export async function* tap(source: AsyncIterable<Buffer>, see: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    see(chunk);
    yield chunk;
  }
}

export interface StreamToStore {
  store: Store;
  key: string;
  /** The plain content. If it throws (a dump that failed), the put fails and nothing is stored. */
  content: AsyncIterable<Buffer>;
  compression: CompressionSettings;
  /** age recipients, already parsed; empty: not encrypted. */
  recipients: string[];
  signal: AbortSignal;
  /** Called with the length of every plain chunk. */
  onContentBytes?: (bytes: number) => void;
  /** Called with the number of bytes the store accepted so far for this object. */
  onStoredBytes?: (bytes: number) => void;
  /** About how large the stored object may get (see PutOptions.expectedBytes). */
  expectedBytes?: number;
  /** Records the store's multipart uploads on the run (upload_started / _completed / _aborted). */
  onEvent?: RunEventSink;
}

/**
 * Stores one file of an artifact: content → count → compress → encrypt → store, which hashes,
 * sizes and writes it durably. Every profile's files go through this one path.
 */
export async function storeStream(input: StreamToStore): Promise<StoredObject & { uncompressedSize: number }> {
  let uncompressedSize = 0;
  const collectGarbage = collectHeapEvery(YOUNG_EVERY_BYTES, 'minor');
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      uncompressedSize += chunk.length;
      input.onContentBytes?.(chunk.length);
      collectGarbage(chunk.length);
      callback(null, chunk);
    },
  });
  const stages: Transform[] = [counted];
  const compressor = createCompressor(input.compression);
  if (compressor) stages.push(compressor);
  if (input.recipients.length > 0) stages.push(createAgeEncryptStream(input.recipients));
  const body = stages.at(-1)!;
  const feeding = pipeline(Readable.from(input.content, { highWaterMark: 1 }), ...(stages as [Transform, ...Transform[]]), { signal: input.signal });
  const onEvent = input.onEvent;
  const onMultipartUpload: PutOptions['onMultipartUpload'] = onEvent
    ? ({ uploadId, state }) => onEvent(`upload_${state}`, `multipart upload of ${input.key} ${state}`, { storeUrl: input.store.url, key: input.key, uploadId })
    : undefined;
  // See heapCollector.ts: parts a store holds while they wait for the network outlive the
  // young generation. (Elsewhere full collections cost CPU and saved nothing: measured.)
  const collectStored = input.store.buffersParts ? collectHeapEvery(FULL_EVERY_BYTES, 'major') : () => {};
  let storedBytes = 0;
  const onProgress = (bytes: number) => {
    collectStored(bytes - storedBytes);
    storedBytes = bytes;
    input.onStoredBytes?.(bytes);
  };
  const [stored] = await Promise.all([input.store.put(input.key, body, { signal: input.signal, onProgress, expectedBytes: input.expectedBytes, onMultipartUpload }), feeding]);
  return { ...stored, uncompressedSize };
}

/** See coalesceChunks: 1 MiB, the compressor's own chunk size. */
const COALESCE_BYTES = 1 << 20;

/**
 * A dump tool's stdout, ending with an error instead of a clean end when the tool fails: a
 * dump cut short must never be stored as if it were whole.
 */
export async function* dumpOutput(dump: PgToolProcess, tool = 'pg_dump'): AsyncGenerator<Buffer> {
  for await (const chunk of coalesceChunks(dump.child.stdout, COALESCE_BYTES)) yield chunk;
  const { code, signal, stderr } = await dump.exited;
  if (code !== 0) {
    throw new BackstopError('DUMP_FAILED', `${tool} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}: ${stderr.slice(-2000) || 'no output'}`);
  }
}

export async function writeManifest(store: Store, prefix: string, manifest: Manifest, signal: AbortSignal): Promise<StoredObject> {
  const text = `${JSON.stringify(manifestSchema.parse(manifest), null, 2)}\n`;
  const written = await store.put(prefix + MANIFEST_NAME, Readable.from([Buffer.from(text)]), { signal });
  // Read back what the store now serves and compare it with what we meant to write.
  const readBack = await readManifest(store, prefix);
  if (JSON.stringify(readBack.manifest) !== JSON.stringify(manifest) || readBack.sha256 !== written.sha256) {
    throw new BackstopError('STORE_WRITE_FAILED', `The manifest read back from ${store.url}/${prefix} differs from what was written.`);
  }
  for (const file of manifest.files) {
    const stat = await store.stat(prefix + file.name);
    if (!stat || stat.size !== file.size) {
      throw new BackstopError('STORE_WRITE_FAILED', `${file.name} in ${store.url}/${prefix} is ${stat ? `${stat.size} bytes` : 'missing'}, expected ${file.size} bytes.`);
    }
  }
  return written;
}

export async function deletePrefix(store: Store, prefix: string): Promise<void> {
  const keys: string[] = [];
  for await (const object of store.list(prefix)) keys.push(object.key);
  if (keys.length > 0) await store.delete(keys);
}

/**
 * The end of a failed attempt, once its tools are stopped (a tool still running could write
 * again): nothing stays under the prefix, and a cancel is reported as the cancel, not as
 * whatever error it caused. Callers `return await` it: it always rejects, and returned
 * unawaited from a `try` whose `finally` awaits (closing the source), it would reject with no
 * handler yet attached, an unhandled rejection that kills the process with the run still
 * `running`.
 */
export async function abandonAttempt(input: { store: Store; signal: AbortSignal }, prefix: string, error: unknown): Promise<never> {
  await deletePrefix(input.store, prefix).catch(() => {});
  if (input.signal.aborted) throw input.signal.reason;
  throw error;
}

/** The end of a good attempt: the manifest, written last, makes it complete. */
export async function completeAttempt(
  input: { store: Store; signal: AbortSignal },
  prefix: string,
  manifest: Manifest,
  progress: { phase: string },
  report: () => void,
): Promise<Artifact> {
  const artifact = await completeArtifact(input.store, prefix, manifest, input.signal);
  progress.phase = 'done';
  report();
  return artifact;
}

/** Writes the manifest, last, and describes the now complete artifact for the catalog. */
export async function completeArtifact(store: Store, prefix: string, manifest: Manifest, signal: AbortSignal): Promise<Artifact> {
  const manifestObject = await writeManifest(store, prefix, manifest, signal);
  return {
    storeUrl: store.url,
    prefix,
    manifest: { name: MANIFEST_NAME, size: manifestObject.size, sha256: manifestObject.sha256 },
    files: manifest.files.map((file) => ({ name: file.name, size: file.size, sha256: file.sha256 })),
  };
}

/** The progress of one backup, and the function that stamps its time and rate and reports it. */
/** How often a running backup reports its byte counts (the heartbeat carries the newest). */
export const PROGRESS_EVERY_MS = 1000;

/**
 * A backup's progress and its reporting: `report` at each phase change, `moved` whenever a
 * byte count changed, which reports at most every `everyMs` (0: every time), so the figures a
 * run page shows move while pg_dump streams, not only between phases.
 */
export function trackBackupProgress(started: number, onProgress?: (progress: BackupProgress) => void, everyMs = PROGRESS_EVERY_MS) {
  const progress: BackupProgress = { phase: 'connecting', bytesDumped: 0, bytesStored: 0, rateBytesPerSecond: 0, elapsedMs: 0, databaseBytes: null };
  let reportedAt = -Infinity;
  const report = () => {
    progress.elapsedMs = performance.now() - started;
    progress.rateBytesPerSecond = progress.elapsedMs > 0 ? Math.round((progress.bytesDumped * 1000) / progress.elapsedMs) : 0;
    reportedAt = progress.elapsedMs;
    onProgress?.({ ...progress });
  };
  const moved = () => {
    if (onProgress && performance.now() - started - reportedAt >= everyMs) report();
  };
  /**
   * The byte counters of one more file: its plain bytes add to `bytesDumped`, its stored bytes
   * to `bytesStored` (files stored at once, a server's databases, each add their own).
   */
  const fileProgress = () => {
    let stored = 0;
    return {
      onContentBytes: (bytes: number) => {
        progress.bytesDumped += bytes;
        moved();
      },
      onStoredBytes: (bytes: number) => {
        progress.bytesStored += bytes - stored;
        stored = bytes;
        moved();
      },
    };
  };
  return { progress, report, moved, fileProgress };
}

/** What every manifest begins with: its format, and the run, attempt and target it binds to. */
export function manifestHeader(input: Pick<BackupInput, 'runId' | 'attempt' | 'targetName' | 'targetId' | 'continuousBase'>) {
  return {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_VERSION,
    backstopVersion: BACKSTOP_VERSION,
    runId: input.runId,
    attempt: input.attempt,
    target: input.targetName,
    ...(input.targetId !== undefined && { targetId: input.targetId }),
    // Last of the header: the manifest schema's order, which the read-back comparison keeps.
    ...(input.continuousBase !== undefined && {
      continuous: {
        slot: input.continuousBase.slot,
        consistentLsn: input.continuousBase.consistentLsn,
        ...(input.continuousBase.tables !== undefined && { tables: input.continuousBase.tables }),
      },
    }),
  } as const;
}

export interface ToolFileInput {
  tool: { name: 'pg_dump' | 'pg_dumpall'; path: string; version: string };
  options: string[];
  databaseUrl: string;
  applicationName: string;
  store: Store;
  prefix: string;
  name: string;
  role: 'roles' | 'schema' | 'data' | 'globals';
  /** The tool's output as stored (default: as it is). */
  content?: (output: AsyncIterable<Buffer>) => AsyncIterable<Buffer>;
  compression: CompressionSettings;
  recipients: string[];
  signal: AbortSignal;
  expectedBytes?: number;
  onEvent?: RunEventSink;
  onContentBytes?: (bytes: number) => void;
  onStoredBytes?: (bytes: number) => void;
  /** The running tool, for the caller to stop on abort. */
  onSpawned?: (tool: PgToolProcess | undefined) => void;
}

/** One plain SQL file written by pg_dump or pg_dumpall, stored through `storeStream`, as the manifest lists it. */
export async function storeToolOutput(input: ToolFileInput): Promise<ManifestFile> {
  const connection = connectionArgs(input.databaseUrl, input.applicationName);
  const running = spawnPgTool(input.tool.path, [...input.options, '--no-password', `--dbname=${connection.dbname}`], connection, { bufferedStdout: true });
  input.onSpawned?.(running);
  const output = dumpOutput(running, input.tool.name);
  const stored = await storeStream({
    store: input.store,
    key: input.prefix + input.name,
    content: input.content ? input.content(output) : output,
    compression: input.compression,
    recipients: input.recipients,
    signal: input.signal,
    onEvent: input.onEvent,
    expectedBytes: input.expectedBytes,
    onContentBytes: input.onContentBytes,
    onStoredBytes: input.onStoredBytes,
  });
  input.onSpawned?.(undefined);
  return {
    name: input.name,
    role: input.role,
    format: 'sql',
    size: stored.size,
    sha256: stored.sha256,
    uncompressedSize: stored.uncompressedSize,
    dumpedBy: { tool: input.tool.name, version: input.tool.version, options: input.options },
  };
}
