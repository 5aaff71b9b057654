import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BackstopError } from '../../core/errors.ts';
import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { findPgTool, type PgToolSearch } from '../../pgtools/findPgTools.ts';
import { serverMajorFromVersionNum } from '../../pgtools/pickPgTool.ts';
import { connectionArgs, spawnPgTool, type PgToolProcess } from '../../pgtools/spawnPgTool.ts';
import { readSourceCatalog } from './readSourceCatalog.ts';
import { exactPattern } from '../../pgtools/exactPattern.ts';
import { isManagedSchema, isReservedRole } from './supabaseProfile.ts';

export interface ScaffoldInput {
  /** The Supabase project the backup came from: the platform's schemas are read there. */
  sourceUrl: string;
  /** The empty scratch database to make look like a new project, as the role that owns it. */
  scratchUrl: string;
  /**
   * The scratch database as the server's administrative role, which creates the missing
   * platform roles (names only, NOLOGIN). Null: they must exist already.
   */
  adminUrl?: string | null;
  pgTools?: PgToolSearch;
  signal?: AbortSignal;
  tmpDir?: string;
}

export interface ScaffoldResult {
  schemas: string[];
  createdRoles: string[];
  /** Statements of the platform's schema that the scratch server could not run (e.g. an extension it lacks). */
  failures: string[];
}

/**
 * A Supabase backup restores into a new Supabase project: the platform's roles and managed
 * schemas (auth, storage, …, with their tables but no rows) are there already, and the backup
 * carries only the rest. A restore drill has no new project at hand, so it makes its scratch
 * database look like one of the source project, read from the project itself:
 *
 * - the reserved roles the source has and the scratch server lacks, created NOLOGIN (roles are
 *   cluster-wide; they stay on the scratch server, which is what a scratch server is for);
 * - the structure of every managed schema, with the extensions (`pg_dump --schema-only
 *   --no-owner --no-privileges`), applied as the scratch database's owner without stopping at
 *   errors: a platform extension the scratch server does not have, or that only a superuser
 *   may create, is reported, not fatal;
 * - Realtime's publications, empty (the backup's schema file adds the app's tables to them).
 * The drill's restore that follows runs
 *   with ON_ERROR_STOP, so anything the backup needs and the scaffold lacks fails it loudly.
 */
/** The scratch URL's role may not create roles (as it should not): the user creates them once. */
export function missingRoleError(role: string, cause: Error): BackstopError {
  return new BackstopError(
    'RESTORE_FAILED',
    `The scratch server has no role "${role}", which the Supabase backup grants to, and could not create it (${cause.message}). Create it there once (CREATE ROLE "${role}" NOLOGIN), or unset BACKSTOP_SCRATCH_URL to use Backstop's own scratch cluster.`,
    { cause },
  );
}

export async function scaffoldSupabaseProject(input: ScaffoldInput): Promise<ScaffoldResult> {
  let sourceCatalog;
  let sourceRoles: string[];
  let publications: string[];
  let serverVersionNum: number;
  try {
    sourceCatalog = await readSourceCatalog(input.sourceUrl);
    const source = await connectDatabase(input.sourceUrl);
    try {
      const { rows } = await source.query<{ name: string }>('select rolname as name from pg_roles order by 1');
      sourceRoles = rows.map((row) => row.name).filter((name) => isReservedRole(name) && !name.startsWith('pg_'));
      const { rows: published } = await source.query<{ name: string }>(
        `select pubname as name from pg_publication where pubname = 'supabase_realtime' or pubname like 'supabase\\_realtime\\_%' order by 1`,
      );
      publications = published.map((row) => row.name);
      const { rows: version } = await source.query<{ v: string }>(`select current_setting('server_version_num') as v`);
      serverVersionNum = Number(version[0]!.v);
    } finally {
      await source.end().catch(() => {});
    }
  } catch (error) {
    throw new BackstopError(
      'DATABASE_UNREACHABLE',
      `A drill of a Supabase backup reads the platform's schemas from the project it came from, which failed: ${(error as Error).message}`,
    );
  }
  const schemas = sourceCatalog.schemas.filter((schema) => isManagedSchema(schema) && !schema.startsWith('pg_') && schema !== 'information_schema');

  const scratch = await connectDatabase(input.adminUrl ?? input.scratchUrl);
  const createdRoles: string[] = [];
  try {
    const { rows } = await scratch.query<{ name: string }>('select rolname as name from pg_roles');
    const present = new Set(rows.map((row) => row.name));
    for (const role of sourceRoles.filter((name) => !present.has(name))) {
      // Another drill may create it at the same moment: a duplicate is as good as success.
      await scratch
        .query(`do $$ begin create role ${scratch.escapeIdentifier(role)} nologin; exception when duplicate_object or unique_violation then null; end $$`)
        .catch((error: Error) => {
          throw missingRoleError(role, error);
        });
      createdRoles.push(role);
    }
  } finally {
    await scratch.end().catch(() => {});
  }

  const file = path.join(input.tmpDir ?? os.tmpdir(), `backstop-scaffold-${randomBytes(6).toString('hex')}.sql`);
  let running: PgToolProcess | undefined;
  const stop = () => void running?.terminate();
  input.signal?.addEventListener('abort', stop, { once: true });
  try {
    const major = serverMajorFromVersionNum(serverVersionNum);
    const pgDump = await findPgTool('pg_dump', major, input.pgTools);
    const source = connectionArgs(input.sourceUrl, 'backstop:drill-scaffold');
    running = spawnPgTool(
      pgDump.path,
      [
        '--format=plain',
        '--schema-only',
        '--no-owner',
        '--no-privileges',
        '--no-password',
        `--file=${file}`,
        // Every extension, not only those in the schemas named: with --schema, pg_dump would leave them out.
        '--extension=*',
        ...schemas.map((schema) => `--schema=${exactPattern(schema)}`),
        `--dbname=${source.dbname}`,
      ],
      source,
    );
    const dumped = await running.exited;
    input.signal?.throwIfAborted();
    if (dumped.code !== 0) throw new BackstopError('DUMP_FAILED', `pg_dump of the project's managed schemas failed: ${dumped.stderr.slice(-2000) || 'no output'}`);

    const psql = await findPgTool('psql', major, input.pgTools);
    const target = connectionArgs(input.scratchUrl, 'backstop:drill-scaffold');
    running = spawnPgTool(psql.path, ['--no-psqlrc', '--quiet', '--no-password', `--file=${file}`, `--dbname=${target.dbname}`], target);
    running.child.stdout.resume();
    const applied = await running.exited;
    input.signal?.throwIfAborted();
    if (applied.code !== 0) throw new BackstopError('RESTORE_FAILED', `psql could not apply the project's managed schemas: ${applied.stderr.slice(-2000) || 'no output'}`);
    const failures = applied.stderr
      .split('\n')
      .filter((line) => /\bERROR:/.test(line))
      .map((line) => line.replace(/^.*?ERROR:\s*/, ''));
    // Realtime's publications, empty: the schema file adds the app's tables to them.
    const client = await connectDatabase(input.scratchUrl);
    try {
      for (const publication of publications) {
        const { rows } = await client.query('select 1 from pg_publication where pubname = $1', [publication]);
        if (rows.length === 0) await client.query(`create publication ${client.escapeIdentifier(publication)}`);
      }
    } finally {
      await client.end().catch(() => {});
    }
    return { schemas, createdRoles, failures };
  } finally {
    input.signal?.removeEventListener('abort', stop);
    await running?.terminate();
    await fs.rm(file, { force: true });
  }
}
