import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { databaseName, withDatabase } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { assertGlobalsShape, planGlobals, type ROLE_FLAGS, type RoleFlags } from '../../core/globalRoles.ts';
import type { Manifest } from '../../core/manifest.ts';
import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { findPgTool } from '../../pgtools/findPgTools.ts';
import { parseToolVersion, serverMajorFromVersionNum } from '../../pgtools/pickPgTool.ts';
import { connectionArgs, spawnPgTool, type PgToolProcess } from '../../pgtools/spawnPgTool.ts';
import { restoreCustomArchive } from '../restoreCustomArchive.ts';
import type { RestoreInput, RestoreResult } from '../restoreInput.ts';
import { withRoleChangeLock } from '../roleChangeLock.ts';
import { assertCanDecrypt, spoolVerifiedFile } from '../spoolVerifiedFile.ts';

/** The databases of a server backup a restore takes: all, or the ones named, which it must hold. */
export function selectedDatabases(manifest: Manifest, names: readonly string[] | undefined): string[] {
  const held = (manifest.databases ?? []).map((database) => database.name);
  if (!names || names.length === 0) return held;
  const missing = names.filter((name) => !held.includes(name));
  if (missing.length > 0) {
    throw new BackstopError(
      'INVALID_INPUT',
      `Backup ${manifest.runId} holds no database ${missing.map((name) => `"${name}"`).join(', ')}; it holds ${held.join(', ')}. Pass --databases names it holds.`,
    );
  }
  return held.filter((name) => names.includes(name));
}

/**
 * Restores a server backup into a server: its globals first (roles, memberships, role
 * settings, tablespaces; see planGlobals for roles the server already has), then each selected
 * database, `jobs` at a time, created by `pg_restore --create` with its owner, settings and
 * ACLs, restored and its row counts compared with the manifest. A database the server already
 * has refuses the restore before anything runs, unless it is named in `replaceDatabases` or is
 * empty (a new server's `postgres`): then it is dropped and created again (`--clean --create`).
 * Each step is an event.
 */
export async function restoreServer(input: RestoreInput): Promise<RestoreResult> {
  const signal = input.signal ?? new AbortController().signal;
  assertCanDecrypt(input.manifest, input.identities);
  const databases = selectedDatabases(input.manifest, input.databases);
  const replace = new Set(input.replaceDatabases ?? []);
  const strayReplace = [...replace].filter((name) => !databases.includes(name));
  if (strayReplace.length > 0) {
    throw new BackstopError(
      'INVALID_INPUT',
      `--replace-databases names ${strayReplace.map((name) => `"${name}"`).join(', ')}, which this restore does not restore (${databases.join(', ')}).`,
    );
  }

  const client = await connectDatabase(input.toUrl);
  const recreate = new Set<string>();
  const empty = new Set<string>();
  try {
    const { rows } = await client.query<{ name: string }>('select datname as name from pg_database where datname = any($1::text[]) order by 1', [databases]);
    const inTheWay: string[] = [];
    for (const { name } of rows) {
      if (replace.has(name)) recreate.add(name);
      // Every server has a `postgres` database, empty when the server is new: nothing is lost by creating it again.
      else if (await isEmptyDatabase(withDatabase(input.toUrl, name))) {
        recreate.add(name);
        empty.add(name);
      } else inTheWay.push(name);
    }
    if (inTheWay.length > 0) {
      throw new BackstopError(
        'RESTORE_TARGET_NOT_EMPTY',
        `The server to restore into already has database ${inTheWay.map((name) => `"${name}"`).join(', ')}. Restore into a server without them, leave them out (--databases), or name each one to drop and replace with --replace-databases.`,
      );
    }
  } finally {
    await client.end().catch(() => {});
  }

  let bytesRestored = 0;
  const globalsFile = input.manifest.files.find((file) => file.role === 'globals');
  if (globalsFile && input.globals !== false) {
    bytesRestored += await restoreGlobals(input, globalsFile, signal);
  } else if (globalsFile) {
    input.onEvent?.('restore_globals_skipped', 'globals not restored (--no-globals): the roles the databases name must exist on the server');
  }

  // pg_restore --create connects to a database of the server to create the restored one; the
  // one the destination URL names can be dropped only from another (template1), and only while
  // no other restore is connected to it: so it goes first, alone.
  const maintenance = databaseName(input.toUrl);
  const first = recreate.has(maintenance) ? [maintenance] : [];
  const rest = databases.filter((name) => !first.includes(name));
  const results: RestoreResult[] = [];
  const restoreOne = async (name: string, restoreSignal: AbortSignal) => {
    const replacing = recreate.has(name);
    input.onEvent?.(
      'restore_database_started',
      `database "${name}": ${replacing ? (empty.has(name) ? 'on the server and empty; dropping and creating it again' : 'dropping and creating it again (--replace-databases)') : 'creating it'}, then restoring it`,
    );
    const result = await restoreCustomArchive({
      ...input,
      database: name,
      toUrl: withDatabase(input.toUrl, name),
      createFrom: name === maintenance ? withDatabase(input.toUrl, 'template1') : input.toUrl,
      clean: replacing,
      jobs: 1,
      schemas: [],
      tables: [],
      signal: restoreSignal,
    });
    results.push(result);
    input.onEvent?.('restore_database_done', `database "${name}" restored${input.checkRows === false ? '' : `: ${result.tablesChecked} tables, row counts match the backup`}`);
  };
  await inParallel(first, 1, signal, restoreOne, input.onEvent);
  await inParallel(rest, Math.max(1, input.jobs ?? 1), signal, restoreOne, input.onEvent);
  return {
    tablesChecked: results.reduce((sum, result) => sum + result.tablesChecked, 0),
    bytesRestored: bytesRestored + results.reduce((sum, result) => sum + result.bytesRestored, 0),
    pgRestoreVersion: results[0]?.pgRestoreVersion ?? '',
    databases,
  };
}

/** No relation, function, large object or schema of its own besides public: a new server's `postgres`. */
async function isEmptyDatabase(url: string): Promise<boolean> {
  const client = await connectDatabase(url);
  try {
    const { rows } = await client.query<{ count: number }>(
      `select ((select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_to%' and n.nspname not like 'pg\\_temp%')
             + (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname not in ('pg_catalog', 'information_schema'))
             + (select count(*) from pg_largeobject_metadata)
             + (select count(*) from pg_namespace where nspname not in ('public', 'pg_catalog', 'information_schema') and nspname not like 'pg\\_to%' and nspname not like 'pg\\_temp%'))::int as count`,
    );
    return rows[0]!.count === 0;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Runs `work` over the databases, `jobs` at a time. The first failure stops the others and is
 * what the restore reports, with the database's name.
 */
async function inParallel(
  names: string[],
  jobs: number,
  signal: AbortSignal,
  work: (name: string, signal: AbortSignal) => Promise<void>,
  onEvent: RestoreInput['onEvent'],
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const stopAll = new AbortController();
  const workSignal = AbortSignal.any([signal, stopAll.signal]);
  const worker = async () => {
    while (next < names.length && !failure) {
      const name = names[next++]!;
      try {
        await work(name, workSignal);
      } catch (error) {
        if (!failure && !stopAll.signal.aborted) {
          const message = error instanceof Error ? error.message : String(error);
          failure = { error: new BackstopError(error instanceof BackstopError ? error.code : 'RESTORE_FAILED', `Database "${name}": ${message}`, { cause: error }) };
          onEvent?.('restore_database_failed', `database "${name}" failed: ${message}`);
          stopAll.abort(failure.error);
        }
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, names.length) }, worker));
  signal.throwIfAborted();
  if (failure) throw (failure as { error: unknown }).error;
}

/**
 * The globals file's text, once its size and SHA-256 match the manifest and its shape is what
 * pg_dumpall writes (see assertGlobalsShape). A drill checks it this way without running it.
 */
export async function readGlobalsFile(
  input: Pick<RestoreInput, 'store' | 'prefix' | 'manifest' | 'identities'>,
  file: Manifest['files'][number],
  spoolDir: string,
  signal: AbortSignal,
): Promise<{ text: string; plainBytes: number }> {
  const spoolPath = path.join(spoolDir, 'globals.sql');
  const plainBytes = await spoolVerifiedFile({ store: input.store, prefix: input.prefix, file, manifest: input.manifest, spoolPath, signal, identities: input.identities });
  const text = await fs.readFile(spoolPath, 'utf8');
  assertGlobalsShape(text, file.name);
  return { text, plainBytes };
}

/**
 * The globals file, checked (size, SHA-256, then its shape: see assertGlobalsShape) before a
 * line of it runs, then run by psql with ON_ERROR_STOP, less the roles the server already has
 * with the same attributes (reported). CREATE TABLESPACE cannot run inside a transaction, so
 * the file is not one: a failure names the statement psql stopped at.
 */
async function restoreGlobals(input: RestoreInput, file: Manifest['files'][number], signal: AbortSignal): Promise<number> {
  const spoolDir = await fs.mkdtemp(path.join(input.tmpDir ?? os.tmpdir(), `backstop-globals-${randomBytes(4).toString('hex')}-`));
  let psqlProcess: PgToolProcess | undefined;
  const stop = () => void psqlProcess?.terminate();
  signal.addEventListener('abort', stop, { once: true });
  try {
    const { text, plainBytes } = await readGlobalsFile(input, file, spoolDir, signal);
    const dumpMajor =
      parseToolVersion(`(PostgreSQL) ${file.dumpedBy?.version ?? input.manifest.pgDump.version}`)?.major ?? serverMajorFromVersionNum(input.manifest.source.serverVersionNum);
    const psql = await findPgTool('psql', dumpMajor, input.pgTools, 'globals file (made by pg_dumpall)');
    const connection = connectionArgs(input.toUrl);
    // Which roles the server has, and the statements run from it, under the lock: another
    // restore creating or altering the same roles meanwhile would make either fail.
    const {
      plan,
      code,
      signal: killedBy,
      stderr,
    } = await withRoleChangeLock(input.toUrl, { signal, onEvent: input.onEvent }, async () => {
      const plan = planGlobals(text, await presentRoles(input.toUrl));
      const runPath = path.join(spoolDir, 'globals-to-run.sql');
      await fs.writeFile(runPath, plan.sql, { mode: 0o600 });
      signal.throwIfAborted();
      psqlProcess = spawnPgTool(psql.path, ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--no-password', `--dbname=${connection.dbname}`, `--file=${runPath}`], connection);
      psqlProcess.child.stdout.resume();
      return { plan, ...(await psqlProcess.exited) };
    });
    signal.throwIfAborted();
    if (code !== 0) {
      throw new BackstopError(
        'RESTORE_FAILED',
        `The globals (${file.name}) did not restore: psql ${killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`}: ${stderr.slice(-2000) || 'no output'}`,
      );
    }
    input.onEvent?.(
      'restore_globals_done',
      `globals restored: ${plan.created.length} role(s) created${plan.created.length > 0 ? ` (${plan.created.join(', ')})` : ''}` +
        (plan.existing.length > 0 ? `; already on the server with the same attributes, kept as they are: ${plan.existing.join(', ')}` : ''),
    );
    return plainBytes;
  } finally {
    signal.removeEventListener('abort', stop);
    await psqlProcess?.terminate();
    await fs.rm(spoolDir, { recursive: true, force: true });
  }
}

/** The roles the server has, with the attributes planGlobals compares. */
async function presentRoles(url: string): Promise<Map<string, RoleFlags>> {
  const client = await connectDatabase(url);
  try {
    const roles = await client.query<Record<string, unknown> & { rolname: string }>(
      'select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls from pg_roles',
    );
    return new Map(
      roles.rows.map((row) => [
        row.rolname,
        {
          SUPERUSER: row.rolsuper === true,
          INHERIT: row.rolinherit === true,
          CREATEROLE: row.rolcreaterole === true,
          CREATEDB: row.rolcreatedb === true,
          LOGIN: row.rolcanlogin === true,
          REPLICATION: row.rolreplication === true,
          BYPASSRLS: row.rolbypassrls === true,
        } satisfies Record<(typeof ROLE_FLAGS)[number], boolean>,
      ]),
    );
  } finally {
    await client.end().catch(() => {});
  }
}
