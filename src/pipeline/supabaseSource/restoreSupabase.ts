import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { BackstopError } from '../../core/errors.ts';
import type { Manifest } from '../../core/manifest.ts';
import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { findPgTool } from '../../pgtools/findPgTools.ts';
import { parseToolVersion, serverMajorFromVersionNum } from '../../pgtools/pickPgTool.ts';
import { connectionArgs, spawnPgTool, type PgToolProcess } from '../../pgtools/spawnPgTool.ts';
import type { RestoreInput, RestoreProgress, RestoreResult } from '../restoreInput.ts';
import { withRoleChangeLock } from '../roleChangeLock.ts';
import { watchRestoredBytes } from '../watchRestoredBytes.ts';
import { lastLines } from '../pgRestoreErrors.ts';
import { countListedTables, existingTable } from '../sourceSnapshot.ts';
import { assertCanDecrypt, spoolVerifiedFile } from '../spoolVerifiedFile.ts';
import { assertPlainDumpShape } from './plainDumpCheck.ts';
import { rewriteLines } from './rewriteLines.ts';
import { missingRoleError } from './scaffoldSupabase.ts';
import { refreshMaterializedViewsSql } from './materializedViews.ts';
import { isManagedSchema } from './supabaseProfile.ts';

/** Restore order: roles own the objects of the schema, which the data fills. */
const FILE_ORDER = ['roles', 'schema', 'data'] as const;

/** Relations outside the managed schemas: the application objects the schema file creates. */
const relationsSql = `
  select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%'
    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
  order by 1, 2`;

/**
 * Restores a Supabase-profile artifact into a Supabase project (a new one, or one made like
 * it): every file's size and SHA-256 is checked while it is spooled, and its shape (exactly
 * what pg_dump writes: no psql meta-command outside its `\restrict` block, see
 * PlainDumpCheck), before anything runs; then psql, without ~/.psqlrc, runs roles, schema and
 * data, in that order, and refreshes the materialized views the source had populated (see
 * materializedViews.ts), as one transaction with ON_ERROR_STOP, so a failure anywhere commits
 * nothing; the data file sets `session_replication_role = replica` itself. Row counts are
 * compared with the manifest.
 */
export async function restoreSupabaseArtifact(input: RestoreInput): Promise<RestoreResult> {
  const signal = input.signal ?? new AbortController().signal;
  refuseDefaultProfileOptions(input);
  const files = FILE_ORDER.map((role) => {
    const file = input.manifest.files.find((candidate) => candidate.role === role && candidate.format === 'sql');
    if (!file) throw new BackstopError('ARTIFACT_CORRUPT', `The manifest in ${input.prefix} is a Supabase backup without its ${role} file.`);
    return file;
  });
  assertCanDecrypt(input.manifest, input.identities);

  const client = await connectDatabase(input.toUrl);
  let spoolDir: string | undefined;
  let psqlProcess: PgToolProcess | undefined;
  const stop = () => void psqlProcess?.terminate();
  signal.addEventListener('abort', stop, { once: true });
  try {
    await assertRestorableInto(client, input.manifest);
    const dumpMajor = parseToolVersion(`(PostgreSQL) ${input.manifest.pgDump.version}`)?.major ?? serverMajorFromVersionNum(input.manifest.source.serverVersionNum);
    // psql as new as pg_dump reads every meta-command the dump holds (\restrict, from 15.14 on).
    const psql = await findPgTool('psql', dumpMajor, input.pgTools, 'SQL dump (made by pg_dump)');

    spoolDir = await fs.mkdtemp(path.join(input.tmpDir ?? os.tmpdir(), `backstop-restore-${randomBytes(4).toString('hex')}-`));
    const started = performance.now();
    const bytesTotal = files.reduce((sum, file) => sum + file.size, 0);
    const plainTotal = files.reduce((sum, file) => sum + file.uncompressedSize, 0);
    const report = (phase: RestoreProgress['phase'], bytesRead: number, bytesRestored = 0) =>
      input.onProgress?.({ phase, bytesRead, bytesTotal, bytesRestored, bytesRestoredTotal: plainTotal, elapsedMs: performance.now() - started });
    const spoolPaths: string[] = [];
    let bytesRestored = 0;
    let bytesVerified = 0;
    for (const file of files) {
      const spoolPath = path.join(spoolDir, `${file.role}.sql`);
      bytesRestored += await spoolVerifiedFile({
        store: input.store,
        prefix: input.prefix,
        file,
        manifest: input.manifest,
        spoolPath,
        signal,
        identities: input.identities,
        onBytes: (bytes) => report('verifying', bytesVerified + bytes),
      });
      bytesVerified += file.size;
      // Before psql sees any of the files: a forged one must not run a single line.
      await assertPlainDumpShape(spoolPath, file.name, signal);
      spoolPaths.push(spoolPath);
      input.onEvent?.('restore_verified', `${file.name}: size and SHA-256 match the manifest`);
    }
    report('restoring', bytesTotal);
    if (input.scratch) {
      const [rolesPath, schemaPath, dataPath] = spoolPaths as [string, string, string];
      await createRolesByName(rolesPath, input.scratch.adminUrl ?? input.toUrl);
      const ownerless = path.join(spoolDir, 'schema-ownerless.sql');
      await pipeline(rewriteLines(createReadStream(schemaPath, { signal }), leaveOutOwnership), createWriteStream(ownerless));
      spoolPaths.splice(0, spoolPaths.length, ownerless, dataPath);
    }

    const connection = connectionArgs(input.toUrl);
    // One transaction over the three files: roles, schema and data commit together or not at all.
    const args = ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--single-transaction', '--no-password', `--dbname=${connection.dbname}`];
    for (const spoolPath of spoolPaths) args.push(`--file=${spoolPath}`);
    // After the data, in the same transaction: the materialized views the source had populated.
    const refresh = refreshMaterializedViewsSql(input.manifest.materializedViews ?? []);
    if (refresh) args.push(`--command=${refresh}`);
    // The roles file alters the server's roles in the same transaction as the rest: the lock
    // is held until psql exited, the transaction committed or rolled back. A drill runs no
    // roles file, and only creates roles by name, which tolerates another doing it too.
    const runPsql = async () => {
      signal.throwIfAborted();
      psqlProcess = spawnPgTool(psql.path, args, connection);
      psqlProcess.child.stdout.resume();
      const stopWatching = watchRestoredBytes(psqlProcess.child.pid, plainTotal, (bytes) => report('restoring', bytesTotal, bytes));
      return psqlProcess.exited.finally(stopWatching);
    };
    const { code, signal: killedBy, stderr } = input.scratch ? await runPsql() : await withRoleChangeLock(input.toUrl, { signal, onEvent: input.onEvent }, runPsql);
    signal.throwIfAborted();
    if (code !== 0) {
      throw new BackstopError(
        'RESTORE_FAILED',
        `psql ${killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`} (nothing was committed): ${lastLines(stderr) || 'no output'}`,
      );
    }

    report('checking', bytesTotal, plainTotal);
    if (input.checkRows === false) return { tablesChecked: 0, bytesRestored, pgRestoreVersion: psql.version };
    const restored = await countListedTables(input.toUrl, input.manifest.tables, { signal, connections: 2 });
    const mismatches: string[] = [];
    for (const table of input.manifest.tables) {
      const rows = restored.get(`${table.schema}.${table.name}`)?.rows ?? null;
      if (rows !== table.rows) mismatches.push(`${table.schema}.${table.name} has ${rows ?? 'no table'} rows, the backup ${table.rows}`);
    }
    if (mismatches.length > 0) {
      throw new BackstopError('RESTORE_FAILED', `The restored database differs from the backup: ${mismatches.join('; ')}.`);
    }
    return { tablesChecked: input.manifest.tables.length, bytesRestored, pgRestoreVersion: psql.version };
  } catch (error) {
    await psqlProcess?.terminate();
    if (signal.aborted) throw signal.reason;
    throw error;
  } finally {
    signal.removeEventListener('abort', stop);
    await client.end().catch(() => {});
    if (spoolDir) await fs.rm(spoolDir, { recursive: true, force: true });
  }
}

const CREATE_ROLE_LINE = /^DO \$backstop\$ BEGIN CREATE ROLE "((?:[^"]|"")+)"; EXCEPTION /;

/**
 * A drill does not run the roles file (creating and altering roles needs CREATEROLE, which
 * the drill's role must not have): the roles it creates are made by name, NOLOGIN and with
 * no attributes, so that the schema's grants to them restore.
 */
async function createRolesByName(rolesPath: string, adminUrl: string): Promise<void> {
  const names: string[] = [];
  for await (const _ of rewriteLines(createReadStream(rolesPath), (line) => {
    const created = CREATE_ROLE_LINE.exec(line);
    if (created) names.push(created[1]!.replaceAll('""', '"'));
    return '';
  }));
  if (names.length === 0) return;
  const client = await connectDatabase(adminUrl);
  try {
    const { rows } = await client.query<{ name: string }>('select rolname as name from pg_roles where rolname = any($1::text[])', [names]);
    const present = new Set(rows.map((row) => row.name));
    for (const name of names.filter((candidate) => !present.has(candidate))) {
      // Another drill may create it at the same moment: a duplicate is as good as success.
      await client
        .query(`do $$ begin create role ${client.escapeIdentifier(name)} nologin; exception when duplicate_object or unique_violation then null; end $$`)
        .catch((error: Error) => {
          throw missingRoleError(name, error);
        });
    }
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * A drill's role may not give objects away, nor set default privileges for other roles:
 * those statements of the schema file are left out (the objects stay the drill's own).
 */
function leaveOutOwnership(line: string): string {
  if (/^ALTER [A-Z ]+ .* OWNER TO .+;$/.test(line) || line.startsWith('ALTER DEFAULT PRIVILEGES FOR ROLE ')) return `-- left out for a drill: ${line}`;
  return line;
}

/** Options of the pg_restore path that plain SQL restored with psql cannot honour. */
function refuseDefaultProfileOptions(input: RestoreInput): void {
  const unsupported = [
    input.clean ? '--clean' : null,
    (input.jobs ?? 1) > 1 ? '--jobs' : null,
    input.noOwner ? '--no-owner' : null,
    (input.schemas ?? []).length > 0 ? '--schema' : null,
    (input.tables ?? []).length > 0 ? '--table' : null,
  ].filter((option) => option !== null);
  if (unsupported.length > 0) {
    throw new BackstopError(
      'INVALID_INPUT',
      `This is a Supabase backup: plain SQL files that psql restores in one transaction into a new Supabase project, with their roles, owners and privileges. ${unsupported.join(', ')} ${unsupported.length === 1 ? 'applies' : 'apply'} only to default backups; restore without ${unsupported.length === 1 ? 'it' : 'them'}, into a new project.`,
    );
  }
}

/**
 * A Supabase project made by the platform has the managed schemas and their (empty) tables,
 * and nothing else: refuse one that already holds application objects, or rows in a table
 * the data file fills, before anything is written.
 */
async function assertRestorableInto(client: pg.Client, manifest: Manifest): Promise<void> {
  const { rows } = await client.query<{ schema: string; name: string }>(relationsSql);
  const application = rows.filter((row) => !isManagedSchema(row.schema)).map((row) => `${row.schema}.${row.name}`);
  if (application.length > 0) {
    throw new BackstopError(
      'RESTORE_TARGET_NOT_EMPTY',
      `The database to restore into already holds ${application.length} application tables, views or sequences (${application.slice(0, 5).join(', ')}${application.length > 5 ? ', …' : ''}). Restore a Supabase backup into a new Supabase project.`,
    );
  }
  const filled: string[] = [];
  for (const table of manifest.tables) {
    if (!isManagedSchema(table.schema)) continue;
    const qualified = await existingTable(client, table);
    if (!qualified) continue;
    const { rows: found } = await client.query<{ filled: boolean }>(`select exists (select 1 from only ${qualified}) as filled`);
    if (found[0]?.filled) filled.push(`${table.schema}.${table.name}`);
  }
  if (filled.length > 0) {
    throw new BackstopError(
      'RESTORE_TARGET_NOT_EMPTY',
      `The database to restore into already has rows in ${filled.join(', ')}, which the backup's data file fills. Restore a Supabase backup into a new Supabase project.`,
    );
  }
}
