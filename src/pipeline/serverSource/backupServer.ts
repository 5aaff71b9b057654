import { databaseName, withDatabase } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { artifactPrefix, manifestSchema, type Manifest, type ManifestFile } from '../../core/manifest.ts';
import { databaseFileStem, planServerDatabases, type ListedDatabase, type ServerOptions } from '../../core/serverDatabases.ts';
import type { Artifact } from '../../core/artifact.ts';
import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { findPgTool } from '../../pgtools/findPgTools.ts';
import { serverMajorFromVersionNum } from '../../pgtools/pickPgTool.ts';
import type { PgToolProcess } from '../../pgtools/spawnPgTool.ts';
import { parseRecipient } from '../age.ts';
import { abandonAttempt, completeAttempt, dumpDatabaseFile, manifestHeader, storeToolOutput, trackBackupProgress, type BackupInput, type DumpedDatabase } from '../backup.ts';
import { defaultCompression, fileExtension } from '../compression.ts';

export interface ServerBackupInput extends BackupInput {
  /** Server profile: which databases and globals, and how many databases at once. */
  server?: ServerOptions;
}

interface ServerFacts {
  serverVersion: string;
  serverVersionNum: number;
  databases: ListedDatabase[];
  /** pg_dumpall reads passwords from pg_authid, which managed services keep from every role. */
  canReadPasswords: boolean;
  bytes: Map<string, number>;
}

async function readServerFacts(url: string): Promise<ServerFacts> {
  const client = await connectDatabase(url);
  try {
    const { rows: settings } = await client.query<{ version: string; num: string; passwords: boolean }>(
      `select current_setting('server_version') as version, current_setting('server_version_num') as num,
              has_table_privilege('pg_catalog.pg_authid', 'select') as passwords`,
    );
    const { rows } = await client.query<{ name: string; allow: boolean; template: boolean; bytes: string | null }>(
      `select datname as name, datallowconn as allow, datistemplate as template,
              case when datallowconn and has_database_privilege(oid, 'connect') then pg_database_size(oid) end as bytes
       from pg_database order by oid`,
    );
    return {
      serverVersion: settings[0]!.version.split(' ')[0]!,
      serverVersionNum: Number(settings[0]!.num),
      canReadPasswords: settings[0]!.passwords,
      databases: rows.map((row) => ({ name: row.name, allowConnections: row.allow, isTemplate: row.template })),
      bytes: new Map(rows.map((row) => [row.name, Number(row.bytes ?? 0)])),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The server profile: a whole PostgreSQL server in one artifact. The globals (roles, their
 * memberships and settings, tablespaces: `pg_dumpall --globals-only`) are one file, and every
 * database the target selects, listed afresh at each run, is one `pg_dump --create` archive
 * (its CREATE DATABASE, settings, ACLs and role settings in that database included), dumped
 * `jobs` at a time through the same path as the default profile's single archive. One
 * database that fails fails the run, naming it; the others are stopped and every file of the
 * attempt deleted. The manifest, written last, lists each database with its file and tables.
 */
export async function backupServer(input: ServerBackupInput): Promise<Artifact> {
  const started = performance.now();
  const options = input.server ?? {};
  const compression = input.compression ?? defaultCompression;
  const recipients = (input.encryptTo ?? []).map(parseRecipient);
  const prefix = artifactPrefix(input.targetName, input.createdAt, input.runId, input.attempt);
  const { progress, report, fileProgress } = trackBackupProgress(started, input.onProgress, input.progressEveryMs);
  const suffix = `${fileExtension(compression.algorithm)}${recipients.length > 0 ? '.age' : ''}`;
  input.signal.throwIfAborted();

  const facts = await readServerFacts(input.databaseUrl);
  const plan = planServerDatabases(facts.databases, options);
  if (plan.dump.length === 0) {
    throw new BackstopError(
      'DUMP_FAILED',
      'The server has no database this target selects (templates and databases that refuse connections are never dumped). Check its --databases and --exclude-databases.',
    );
  }
  progress.databaseBytes = plan.dump.reduce((sum, name) => sum + (facts.bytes.get(name) ?? 0), 0);
  input.onEvent?.(
    'server_databases',
    `${plan.dump.length} database(s) to back up: ${plan.dump.join(', ')}` +
      (plan.skipped.length > 0 ? `; left out: ${plan.skipped.map((skipped) => `${skipped.name} (${skipped.reason})`).join(', ')}` : ''),
    { databases: plan.dump, skipped: plan.skipped },
  );

  const stopAll = new AbortController();
  const signal = AbortSignal.any([input.signal, stopAll.signal]);
  let globalsTool: PgToolProcess | undefined;
  const stopGlobals = () => void globalsTool?.terminate();
  signal.addEventListener('abort', stopGlobals, { once: true });
  try {
    const serverMajor = serverMajorFromVersionNum(facts.serverVersionNum);
    const files: ManifestFile[] = [];
    let globals: NonNullable<Manifest['globals']> = { file: null, passwords: false };
    progress.phase = 'dumping';
    report();

    const choice = options.globals ?? 'roles+passwords';
    if (choice !== 'none') {
      const pgDumpall = await findPgTool('pg_dumpall', serverMajor, input.pgTools);
      const passwords = choice === 'roles+passwords' && facts.canReadPasswords;
      if (choice === 'roles+passwords' && !passwords) {
        input.onEvent?.(
          'globals_without_passwords',
          'the server does not let this role read pg_authid (as on managed services): roles are backed up without their passwords (pg_dumpall --no-role-passwords); set them again after a restore',
        );
      }
      const toolOptions = ['--globals-only', ...(passwords ? [] : ['--no-role-passwords'])];
      const name = `globals.sql${suffix}`;
      const stored = await storeToolOutput({
        tool: { ...pgDumpall, name: 'pg_dumpall' },
        options: toolOptions,
        databaseUrl: input.databaseUrl,
        applicationName: `backstop:${input.runId}`,
        store: input.store,
        prefix,
        name,
        role: 'globals',
        compression,
        recipients,
        signal,
        onEvent: input.onEvent,
        onSpawned: (running: PgToolProcess | undefined) => {
          globalsTool = running;
        },
        ...fileProgress(),
      });
      files.push(stored);
      globals = { file: name, passwords };
      input.onEvent?.('dump_stored', `stored ${name}: ${stored.size} bytes, roles ${passwords ? 'with' : 'without'} passwords`, {
        file: name,
        size: stored.size,
        sha256: stored.sha256,
      });
    }

    const dumpStarted = performance.now();
    const dumped = await dumpDatabases(plan.dump, Math.max(1, options.jobs ?? 1), stopAll, async (name, index) => {
      const file = `${databaseFileStem(name, index)}.pgcustom${suffix}`;
      return dumpDatabaseFile({
        databaseUrl: withDatabase(input.databaseUrl, name),
        applicationName: `backstop:${input.runId}`,
        store: input.store,
        key: prefix + file,
        compression,
        recipients,
        checksums: input.checksums === true,
        // The archive carries CREATE DATABASE with its owner, encoding, locale, settings and
        // ACLs, and the roles' settings in that database: a restore recreates it whole.
        extraOptions: ['--create'],
        pgTools: input.pgTools,
        signal,
        onEvent: input.onEvent,
        ...fileProgress(),
      }).then((result) => ({ ...result, file: { ...result.file, name: file, database: name } }));
    });
    const dumpMs = performance.now() - dumpStarted;
    report();

    progress.phase = 'manifest';
    report();
    const first = dumped[0]!;
    const manifest = manifestSchema.parse({
      ...manifestHeader(input),
      profile: 'server',
      createdAt: input.createdAt,
      // The database the target's URL names: where the server was read from.
      source: { serverVersion: facts.serverVersion, serverVersionNum: facts.serverVersionNum, database: databaseName(input.databaseUrl) },
      // What every database's pg_dump shares (the snapshot option is each one's own).
      pgDump: {
        version: first.pgDump.version,
        options: first.pgDump.options.filter((option) => !option.startsWith('--snapshot=')),
        snapshot: dumped.every((database) => database.pgDump.snapshot),
      },
      compression: { algorithm: compression.algorithm, level: compression.level },
      encryption: recipients.length > 0 ? { algorithm: 'age', recipients } : null,
      files: [...files, ...dumped.map((database) => database.file)],
      databases: dumped.map((database) => ({ name: database.file.database!, file: database.file.name, snapshot: database.pgDump.snapshot })),
      globals,
      tables: dumped.flatMap((database) => database.tables.map((table) => ({ database: database.file.database!, ...table }))),
      timings: { dumpMs: Math.round(dumpMs), totalMs: Math.round(performance.now() - started) },
    });
    return await completeAttempt(input, prefix, manifest, progress, report);
  } catch (error) {
    stopAll.abort();
    await globalsTool?.terminate();
    return await abandonAttempt(input, prefix, error);
  } finally {
    signal.removeEventListener('abort', stopGlobals);
  }
}

/**
 * Dumps the databases `jobs` at a time, in the server's order. The first failure stops the
 * others (through `stopAll`) and is what the run reports, with the database's name; the
 * others' "aborted" errors are only its consequence.
 */
async function dumpDatabases(names: string[], jobs: number, stopAll: AbortController, dump: (name: string, index: number) => Promise<DumpedDatabase>): Promise<DumpedDatabase[]> {
  const results: DumpedDatabase[] = new Array(names.length);
  let next = 0;
  let firstFailure: { error: unknown } | null = null;
  const worker = async () => {
    while (next < names.length && !firstFailure) {
      const index = next++;
      const name = names[index]!;
      try {
        results[index] = await dump(name, index);
      } catch (error) {
        if (!firstFailure && !stopAll.signal.aborted) {
          firstFailure = { error: databaseFailure(name, error) };
          stopAll.abort(firstFailure.error);
        }
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, names.length) }, worker));
  if (firstFailure) throw (firstFailure as { error: unknown }).error;
  stopAll.signal.throwIfAborted();
  return results;
}

function databaseFailure(name: string, error: unknown): unknown {
  if (!(error instanceof BackstopError)) return new BackstopError('DUMP_FAILED', `Database "${name}": ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  return new BackstopError(error.code, `Database "${name}": ${error.message}`, { cause: error });
}
