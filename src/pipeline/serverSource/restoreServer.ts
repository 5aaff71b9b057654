import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { withDatabase } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { assertGlobalsShape, planGlobals, ROLE_FLAGS, type RoleFlags } from '../../core/globalRoles.ts';
import type { Manifest } from '../../core/manifest.ts';
import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { findPgTool } from '../../pgtools/findPgTools.ts';
import { parseToolVersion, serverMajorFromVersionNum } from '../../pgtools/pickPgTool.ts';
import { connectionArgs, spawnPgTool, type PgToolProcess } from '../../pgtools/spawnPgTool.ts';
import { restoreCustomArchive } from '../restoreCustomArchive.ts';
import type { RestoreInput, RestoreResult } from '../restoreInput.ts';
import { assertCanDecrypt, spoolVerifiedFile } from '../spoolVerifiedFile.ts';

/** The databases of a server backup a restore takes: all, or the ones named, which it must hold. */
export function selectedDatabases(manifest: Manifest, names: readonly string[] | undefined): string[] {
  const held = (manifest.databases ?? []).map((database) => database.name);
  if (!names || names.length === 0) return held;
  const missing = names.filter((name) => !held.includes(name));
  if (missing.length > 0) {
    throw new BackstopError('INVALID_INPUT', `Backup ${manifest.runId} holds no database ${missing.map((name) => `"${name}"`).join(', ')}; it holds ${held.join(', ')}. Pass --databases names it holds.`);
  }
  return held.filter((name) => names.includes(name));
}

/**
 * Restores a server backup into a server: its globals first (roles, memberships, role
 * settings, tablespaces; see planGlobals for roles the server already has), then each selected
 * database, `jobs` at a time, created by `pg_restore --create` with its owner, settings and
 * ACLs, restored and its row counts compared with the manifest. A database the server already
 * has refuses the restore before anything runs, unless it is named in `replaceDatabases`:
 * then it is dropped and created again (`--clean --create`). Each step is an event.
 */
export async function restoreServer(input: RestoreInput): Promise<RestoreResult> {
  const signal = input.signal ?? new AbortController().signal;
  assertCanDecrypt(input.manifest, input.identities);
  const databases = selectedDatabases(input.manifest, input.databases);
  const replace = new Set(input.replaceDatabases ?? []);
  const strayReplace = [...replace].filter((name) => !databases.includes(name));
  if (strayReplace.length > 0) {
    throw new BackstopError('INVALID_INPUT', `--replace-databases names ${strayReplace.map((name) => `"${name}"`).join(', ')}, which this restore does not restore (${databases.join(', ')}).`);
  }

  const client = await connectDatabase(input.toUrl);
  let present: Map<string, RoleFlags>;
  try {
    const { rows } = await client.query<{ name: string }>('select datname as name from pg_database where datname = any($1::text[]) order by 1', [databases]);
    const inTheWay = rows.map((row) => row.name).filter((name) => !replace.has(name));
    if (inTheWay.length > 0) {
      throw new BackstopError(
        'RESTORE_TARGET_NOT_EMPTY',
        `The server to restore into already has database ${inTheWay.map((name) => `"${name}"`).join(', ')}. Restore into a server without them, leave them out (--databases), or name each one to drop and replace with --replace-databases.`,
      );
    }
    const roles = await client.query<Record<string, unknown> & { rolname: string }>(
      'select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls from pg_roles',
    );
    present = new Map(
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

  let bytesRestored = 0;
  let pgRestoreVersion = '';
  const globalsFile = input.manifest.files.find((file) => file.role === 'globals');
  if (globalsFile && input.globals !== false) {
    bytesRestored += await restoreGlobals(input, globalsFile, present, signal);
  } else if (globalsFile) {
    input.onEvent?.('restore_globals_skipped', 'globals not restored (--no-globals): the roles the databases name must exist on the server');
  }

  let tablesChecked = 0;
  let next = 0;
  let failure: { error: unknown } | null = null;
  const stopAll = new AbortController();
  const restoreSignal = AbortSignal.any([signal, stopAll.signal]);
  const worker = async () => {
    while (next < databases.length && !failure) {
      const name = databases[next++]!;
      const replacing = replace.has(name);
      input.onEvent?.('restore_database_started', `database "${name}": ${replacing ? 'dropping and creating it again' : 'creating it'}, then restoring it`);
      try {
        const result = await restoreCustomArchive({
          ...input,
          database: name,
          toUrl: withDatabase(input.toUrl, name),
          createFrom: input.toUrl,
          clean: replacing,
          jobs: 1,
          schemas: [],
          tables: [],
          signal: restoreSignal,
        });
        tablesChecked += result.tablesChecked;
        bytesRestored += result.bytesRestored;
        pgRestoreVersion = result.pgRestoreVersion;
        input.onEvent?.('restore_database_done', `database "${name}" restored${input.checkRows === false ? '' : `: ${result.tablesChecked} tables, row counts match the backup`}`);
      } catch (error) {
        if (!failure && !stopAll.signal.aborted) {
          const message = error instanceof Error ? error.message : String(error);
          failure = { error: new BackstopError(error instanceof BackstopError ? error.code : 'RESTORE_FAILED', `Database "${name}": ${message}`, { cause: error }) };
          input.onEvent?.('restore_database_failed', `database "${name}" failed: ${message}`);
          stopAll.abort(failure.error);
        }
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, input.jobs ?? 1), databases.length) }, worker));
  signal.throwIfAborted();
  if (failure) throw (failure as { error: unknown }).error;
  return { tablesChecked, bytesRestored, pgRestoreVersion, databases };
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
async function restoreGlobals(input: RestoreInput, file: Manifest['files'][number], present: Map<string, RoleFlags>, signal: AbortSignal): Promise<number> {
  const spoolDir = await fs.mkdtemp(path.join(input.tmpDir ?? os.tmpdir(), `backstop-globals-${randomBytes(4).toString('hex')}-`));
  let psqlProcess: PgToolProcess | undefined;
  const stop = () => void psqlProcess?.terminate();
  signal.addEventListener('abort', stop, { once: true });
  try {
    const { text, plainBytes } = await readGlobalsFile(input, file, spoolDir, signal);
    const plan = planGlobals(text, present);
    const runPath = path.join(spoolDir, 'globals-to-run.sql');
    await fs.writeFile(runPath, plan.sql, { mode: 0o600 });
    const dumpMajor = parseToolVersion(`(PostgreSQL) ${file.dumpedBy?.version ?? input.manifest.pgDump.version}`)?.major ?? serverMajorFromVersionNum(input.manifest.source.serverVersionNum);
    const psql = await findPgTool('psql', dumpMajor, input.pgTools, 'globals file (made by pg_dumpall)');
    const connection = connectionArgs(input.toUrl);
    psqlProcess = spawnPgTool(psql.path, ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--no-password', `--dbname=${connection.dbname}`, `--file=${runPath}`], connection);
    psqlProcess.child.stdout.resume();
    const { code, signal: killedBy, stderr } = await psqlProcess.exited;
    signal.throwIfAborted();
    if (code !== 0) {
      throw new BackstopError('RESTORE_FAILED', `The globals (${file.name}) did not restore: psql ${killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`}: ${stderr.slice(-2000) || 'no output'}`);
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
