import { artifactPrefix, manifestSchema, type ManifestFile } from '../../core/manifest.ts';
import type { Artifact } from '../../core/artifact.ts';
import { discoverPgTools, findPgTool } from '../../pgtools/findPgTools.ts';
import { serverMajorFromVersionNum, type PgToolCandidate } from '../../pgtools/pickPgTool.ts';
import type { PgToolProcess } from '../../pgtools/spawnPgTool.ts';
import { parseRecipient } from '../age.ts';
import { abandonAttempt, completeAttempt, manifestHeader, storeToolOutput, trackBackupProgress, type BackupInput } from '../backup.ts';
import { defaultCompression, fileExtension } from '../compression.ts';
import { openSourceSnapshot } from '../sourceSnapshot.ts';
import { readSourceCatalog } from './readSourceCatalog.ts';
import { framed, rewriteLines } from './rewriteLines.ts';
import { createSchemaRewriter, rewriteRolesLine } from './supabaseSqlRules.ts';
import { isDumpedDataTable, planSupabaseDump } from './supabaseProfile.ts';
import { openStorageEndpoint, storageEndpointFromEnv } from './storageEndpoint.ts';
import { backupStorageObjects } from './storageObjects.ts';

/** The data file disables triggers (and so foreign-key checks) for its own session, as `supabase db dump` does. */
export const DATA_HEADER = 'SET session_replication_role = replica;\n\n';
/** pg_dump leaves its session settings behind; the next file must not inherit them. */
const RESET_TRAILER = '\nRESET ALL;\n';

export interface SupabaseBackupInput extends BackupInput {
  /** Also copy the project's Storage objects (`--with-storage`), through the endpoint that `storageEnv` configures. */
  withStorage?: boolean;
  /** Where SUPABASE_STORAGE_S3_* come from; default process.env. */
  storageEnv?: NodeJS.ProcessEnv;
}

interface FileStep {
  role: 'roles' | 'schema' | 'data';
  tool: PgToolCandidate & { name: 'pg_dump' | 'pg_dumpall' };
  options: string[];
  content: (output: AsyncIterable<Buffer>) => AsyncIterable<Buffer>;
}

/**
 * The Supabase profile: three plain SQL files in one artifact, the way `supabase db dump`
 * splits them — roles (pg_dumpall, reserved roles commented out), schema (managed schemas
 * left out) and data (COPY, auth and storage rows included, platform migration history not).
 * Each file goes through the same compress → encrypt → hash → store path as the default
 * dump; both pg_dump runs read the same exported snapshot as the row counts; the manifest is
 * written last. On failure or abort the running tool is stopped and the prefix deleted.
 */
export async function backupSupabase(input: SupabaseBackupInput): Promise<Artifact> {
  const started = performance.now();
  // Before anything runs: a missing endpoint is a configuration error, not a failed dump.
  const storageConfig = input.withStorage ? storageEndpointFromEnv(input.storageEnv ?? process.env) : null;
  const compression = input.compression ?? defaultCompression;
  const recipients = (input.encryptTo ?? []).map(parseRecipient);
  const prefix = artifactPrefix(input.targetName, input.createdAt, input.runId, input.attempt);
  const { progress, report, moved, fileProgress } = trackBackupProgress(started, input.onProgress, input.progressEveryMs);
  input.signal.throwIfAborted();

  // The installed tools are found while the snapshot is opened (see backupDatabase).
  for (const tool of ['pg_dump', 'pg_dumpall'] as const) discoverPgTools(tool, input.pgTools).catch(() => {});
  const source = await openSourceSnapshot(input.databaseUrl, input.continuousBase ? { snapshot: input.continuousBase.snapshot } : {});
  progress.databaseBytes = source.databaseBytes;
  let running: PgToolProcess | undefined;
  const stopTool = () => void running?.terminate();
  input.signal.addEventListener('abort', stopTool, { once: true });
  try {
    const serverMajor = serverMajorFromVersionNum(source.serverVersionNum);
    const pgDump = { ...(await findPgTool('pg_dump', serverMajor, input.pgTools)), name: 'pg_dump' as const };
    const pgDumpall = { ...(await findPgTool('pg_dumpall', serverMajor, input.pgTools)), name: 'pg_dumpall' as const };
    const catalog = await readSourceCatalog(input.databaseUrl);
    const plan = planSupabaseDump(catalog, source.snapshot);
    input.signal.throwIfAborted();
    const steps: FileStep[] = [
      { role: 'roles', tool: pgDumpall, options: plan.roles, content: (output) => rewriteLines(output, rewriteRolesLine) },
      { role: 'schema', tool: pgDump, options: plan.schema, content: (output) => framed('', rewriteLines(output, createSchemaRewriter()), RESET_TRAILER) },
      { role: 'data', tool: pgDump, options: plan.data, content: (output) => framed(DATA_HEADER, output, RESET_TRAILER) },
    ];

    progress.phase = 'dumping';
    report();
    input.onEvent?.('dump_started', `Supabase profile: pg_dumpall ${pgDumpall.version} and pg_dump ${pgDump.version} against PostgreSQL ${source.serverVersion}`, {
      profile: 'supabase',
      pgDumpVersion: pgDump.version,
      pgDumpallVersion: pgDumpall.version,
      serverVersion: source.serverVersion,
    });

    // Counted concurrently on the snapshot's own connection while the files stream.
    const counting = source.countRows(input.signal, { checksums: input.checksums });
    counting.catch(() => {});
    const dumpStarted = performance.now();
    const suffix = `${fileExtension(compression.algorithm)}${recipients.length > 0 ? '.age' : ''}`;
    const files: ManifestFile[] = [];
    for (const step of steps) {
      input.signal.throwIfAborted();
      const name = `${step.role}.sql${suffix}`;
      const stored = await storeToolOutput({
        tool: step.tool,
        options: step.options,
        databaseUrl: input.databaseUrl,
        // The run id in application_name lets an operator (and the tests) find these dumps in pg_stat_activity.
        applicationName: `backstop:${input.runId}`,
        store: input.store,
        prefix,
        name,
        role: step.role,
        content: step.content,
        compression,
        recipients,
        signal: input.signal,
        onEvent: input.onEvent,
        expectedBytes: source.databaseBytes,
        onSpawned: (tool) => {
          running = tool;
        },
        ...fileProgress(),
      });
      files.push(stored);
      report();
      input.onEvent?.('dump_stored', `stored ${name}: ${stored.size} bytes (${stored.uncompressedSize} before compression)`, {
        file: name,
        size: stored.size,
        sha256: stored.sha256,
      });
    }
    const dumpMs = performance.now() - dumpStarted;

    // Only the tables whose rows are in the data file: a restore compares exactly these.
    const tables = (await counting).filter(isDumpedDataTable);
    await source.close();

    // Storage objects after the database files, with the snapshot released. Not atomic with the
    // dump: objects written or deleted meanwhile may or may not be in the copy.
    let storageBuckets: string[] | null = null;
    if (storageConfig) {
      const endpoint = openStorageEndpoint(storageConfig);
      try {
        const storedBefore = progress.bytesStored;
        const copied = await backupStorageObjects({
          endpoint,
          store: input.store,
          prefix,
          compression,
          recipients,
          signal: input.signal,
          onEvent: input.onEvent,
          onStoredBytes: (bytes) => {
            progress.bytesStored = storedBefore + bytes;
            moved();
          },
        });
        files.push(...copied.files);
        storageBuckets = copied.buckets;
      } finally {
        endpoint.close();
      }
      report();
    }

    progress.phase = 'manifest';
    report();
    // Parsed before writing, so the object compared with what the store serves back has the schema's key order.
    const manifest = manifestSchema.parse({
      ...manifestHeader(input),
      profile: 'supabase',
      createdAt: input.createdAt,
      source: { serverVersion: source.serverVersion, serverVersionNum: source.serverVersionNum, database: source.database },
      // What both pg_dump runs share; each file's `dumpedBy` has its full options.
      pgDump: { version: pgDump.version, options: plan.shared, snapshot: source.snapshot !== null },
      compression: { algorithm: compression.algorithm, level: compression.level },
      encryption: recipients.length > 0 ? { algorithm: 'age', recipients } : null,
      files,
      ...(storageBuckets ? { storage: { buckets: storageBuckets } } : {}),
      tables,
      ...(catalog.materializedViews.length > 0 ? { materializedViews: catalog.materializedViews } : {}),
      timings: { dumpMs: Math.round(dumpMs), totalMs: Math.round(performance.now() - started) },
    });
    return await completeAttempt(input, prefix, manifest, progress, report);
  } catch (error) {
    await running?.terminate();
    return await abandonAttempt(input, prefix, error);
  } finally {
    input.signal.removeEventListener('abort', stopTool);
    await source.close();
  }
}
