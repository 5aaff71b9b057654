import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { preparePointInTimeRestore } from '../../operations/pointInTimeRestore.ts';
import { prepareRestore } from '../../operations/prepareRestore.ts';
import { storageEndpointFromEnv } from '../../pipeline/supabaseSource/storageEndpoint.ts';
import type { CommandContext } from '../context.ts';
import { describeCliError } from '../osError.ts';
import { printJson, warn } from '../output.ts';
import { adviceForOsError } from '../../core/osError.ts';
import { createProgressDisplay } from '../progressDisplay.ts';
import { collect, sayingFlags } from './targetOptions.ts';

const restoreFlags = { databaseUrl: '--to', jobs: '--jobs', identity: '--identity', databases: '--databases', replaceDatabases: '--replace-databases', at: '--at' };

function nameList(list: string | undefined): string[] | undefined {
  if (list === undefined) return undefined;
  return list
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
}

/** The contents of an age identity file, for the operation to parse (it says what is wrong with them). */
export async function readIdentityFile(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    const reason = adviceForOsError(error) ?? (error as Error).message;
    throw new BackstopError('INVALID_INPUT', `Cannot read the identity file ${file}: ${reason}. Pass the file \`backstop keygen -o\` or \`age-keygen -o\` wrote.`);
  }
}

/** The command's options, as commander parses them. */
interface RestoreOptions {
  to: string;
  clean?: boolean;
  jobs: string;
  schema: string[];
  table: string[];
  owner: boolean;
  identity?: string;
  databases?: string;
  replaceDatabases?: string;
  globals: boolean;
  withStorage?: boolean;
  json?: boolean;
  at?: string;
}

export function registerRestoreCommand(program: Command, context: () => CommandContext): void {
  program
    .command('restore')
    .description(
      'Restore a backup into a database, from a run id or, with no catalog at all, from the URL of its manifest.json; or a continuous target as it was at a point in time (TARGET --at). The artifact is checked against its manifest before pg_restore runs.',
    )
    .argument('<run-id|manifest-url|target>', 'a succeeded run id, or s3://…/manifest.json, file:///…/manifest.json, a path; with --at, a continuous target')
    .option('--at <point>', 'a continuous target as it was at a point: latest, an LSN (0/16B3748) or a time with its offset (2026-12-06T12:30:00Z)')
    .requiredOption('--to <database-url>', 'database to restore into (must be empty unless --clean); for a server backup, the server: postgres://USER:PASSWORD@HOST:PORT/')
    .option('--clean', 'drop and recreate objects the backup contains')
    .option('--jobs <n>', 'parallel pg_restore jobs (1 = one transaction, all or nothing)', '1')
    .option('--schema <name>', 'restore only this schema; repeatable', collect, [])
    .option('--table <name>', 'restore only tables of this name; repeatable', collect, [])
    .option('--identity <file>', 'age identity file, for an encrypted backup')
    .option('--no-owner', 'do not restore ownership and privileges (for a server without the same roles)')
    .option('--databases <names>', 'a server backup: restore only these databases, comma-separated (default: all of them)')
    .option('--replace-databases <names>', 'a server backup: databases the server already has that may be dropped and restored again, comma-separated')
    .option('--no-globals', 'a server backup: do not restore its roles (the roles its databases name must exist)')
    .option('--with-storage', 'Supabase backups taken --with-storage: also write the Storage objects back through the S3 endpoint (SUPABASE_STORAGE_S3_ENDPOINT and keys)')
    .option('--json', 'print the result as JSON')
    .action(async (source: string, options: RestoreOptions) => {
      const ctx = context();
      if (options.at !== undefined) return restoreToPoint(ctx, source, { ...options, at: options.at });
      const identity = options.identity === undefined ? undefined : await readIdentityFile(options.identity);
      const storage = options.withStorage ? storageEndpointFromEnv(process.env) : null;
      // A manifest URL needs no catalog: ctx.db opens it (or starts the embedded one) only for a run id.
      const restore = await sayingFlags(restoreFlags, () =>
        prepareRestore(
          { db: ctx.db, config: ctx.config, log: ctx.log },
          source,
          {
            databaseUrl: options.to,
            clean: options.clean ?? false,
            jobs: Number(options.jobs),
            noOwner: !options.owner,
            identity,
            ...(options.databases !== undefined ? { databases: nameList(options.databases) } : {}),
            ...(options.replaceDatabases !== undefined ? { replaceDatabases: nameList(options.replaceDatabases) } : {}),
            globals: options.globals,
          },
          { via: 'cli', actor: ctx.actor },
        ),
      );

      // With --json the outcome is one document shaped like a run's (id, status, error, times),
      // whether the restore succeeded or not.
      const startedAt = new Date().toISOString();
      let backup = { runId: restore.runId, target: restore.target };
      const outcome = (fields: Record<string, unknown>) => ({
        runId: backup.runId,
        kind: 'restore',
        target: backup.target,
        startedAt,
        finishedAt: new Date().toISOString(),
        ...fields,
      });
      await watchRestore(options.json === true, outcome, async (signal, display) => {
        const {
          storage: restoredStorage,
          storageObjects,
          runId,
          target,
          elapsedMs,
          ...result
        } = await restore.execute({
          schemas: options.schema,
          tables: options.table,
          storage,
          signal,
          onManifest: (found) => {
            backup = { runId: found.runId, target: found.target };
            if (options.identity && !found.encrypted) warn(`--identity ${options.identity} is not needed: backup ${found.runId} is not encrypted; it was ignored.`);
          },
          showProgress: (next) => display.update(next),
        });
        display.done();
        if (options.json) printJson(outcome({ status: 'restored', error: null, ...result, storage: restoredStorage, elapsedMs }));
        else {
          const databases = result.databases ? `${result.databases.length} database(s): ${result.databases.join(', ')}; ` : '';
          process.stdout.write(`Restored backup ${runId} of ${target} (${databases}${result.tablesChecked} tables, row counts checked) in ${(elapsedMs / 1000).toFixed(1)} s\n`);
          if (restoredStorage)
            process.stdout.write(`Restored ${restoredStorage.objects} Storage object(s) (${restoredStorage.bytes} bytes) into ${restoredStorage.buckets.length} bucket(s)\n`);
          else if (storageObjects > 0) process.stdout.write(`The backup also holds ${storageObjects} Storage object(s), not restored: pass --with-storage to write them back\n`);
        }
      });
    });
}

/** `restore TARGET --at POINT`: the base backup and the change segments after it, up to the point. */
async function restoreToPoint(ctx: CommandContext, target: string, options: RestoreOptions & { at: string }): Promise<void> {
  const refused = [
    options.schema.length > 0 ? '--schema' : null,
    options.table.length > 0 ? '--table' : null,
    options.databases !== undefined ? '--databases' : null,
    options.replaceDatabases !== undefined ? '--replace-databases' : null,
    options.withStorage ? '--with-storage' : null,
  ].filter((flag) => flag !== null);
  if (refused.length > 0) {
    throw new BackstopError(
      'INVALID_INPUT',
      `${refused.join(', ')} cannot be combined with --at: a point-in-time restore replays every table the change stream carries onto the whole base backup.`,
    );
  }
  const identity = options.identity === undefined ? undefined : await readIdentityFile(options.identity);
  const restore = await sayingFlags(restoreFlags, () =>
    preparePointInTimeRestore(
      { db: ctx.db, config: ctx.config, log: ctx.log },
      target,
      { databaseUrl: options.to, clean: options.clean ?? false, jobs: Number(options.jobs), noOwner: !options.owner, identity, globals: options.globals, at: options.at },
      { via: 'cli', actor: ctx.actor },
    ),
  );
  const startedAt = new Date().toISOString();
  const outcome = (fields: Record<string, unknown>) => ({ runId: restore.runId, kind: 'restore', target, at: options.at, startedAt, finishedAt: new Date().toISOString(), ...fields });
  await watchRestore(options.json === true, outcome, async (signal, display) => {
    const { storage: _storage, storageObjects: _objects, ...result } = await restore.execute({ signal, showProgress: (next) => display.update(next) });
    display.done();
    if (options.json) {
      printJson(outcome({ status: 'restored', error: null, ...result }));
      return;
    }
    const reached = result.pointInTime;
    process.stdout.write(
      `Restored ${target} to ${reached.at}: base backup ${reached.baseRunId} (LSN ${reached.baseLsn}), then ${reached.transactions} transaction(s) from ${reached.segments} segment(s)\n` +
        `Reached LSN ${reached.reachedLsn}${reached.reachedAt ? `, committed at ${reached.reachedAt}` : ' (the base backup itself: no transaction after it is at or before the point)'} in ${(result.elapsedMs / 1000).toFixed(1)} s\n`,
    );
    if (reached.notContinuouslyProtected.length > 0) {
      process.stdout.write(`Not continuously protected (no primary key or replica identity), as of the base backup: ${reached.notContinuouslyProtected.join(', ')}\n`);
    }
    if (reached.schemaChanges.length > 0) process.stdout.write(`The replayed range crosses a change of shape of: ${reached.schemaChanges.join(', ')}\n`);
  });
}

/**
 * Runs a restore the person watches: a signal cancels it, progress shows on a terminal, and
 * with --json a failure is printed as the same document as a success (status, error, times).
 */
async function watchRestore(
  json: boolean,
  outcome: (fields: Record<string, unknown>) => Record<string, unknown>,
  work: (signal: AbortSignal, display: ReturnType<typeof createProgressDisplay>) => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  const onSignal = () => controller.abort(new BackstopError('CANCELLED', 'Restore cancelled by a signal.'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const display = createProgressDisplay(!json);
  try {
    await work(controller.signal, display);
  } catch (error) {
    if (json) printJson(outcome({ status: 'failed', error: describeCliError(error) }));
    throw error;
  } finally {
    display.done();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
