import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { prepareRestore } from '../../operations/prepareRestore.ts';
import { storageEndpointFromEnv } from '../../pipeline/supabaseSource/storageEndpoint.ts';
import type { CommandContext } from '../context.ts';
import { describeCliError } from '../osError.ts';
import { printJson, warn } from '../output.ts';
import { adviceForOsError } from '../../core/osError.ts';
import { createProgressDisplay } from '../progressDisplay.ts';
import { collect, sayingFlags } from './targetOptions.ts';

const restoreFlags = { databaseUrl: '--to', jobs: '--jobs', identity: '--identity', databases: '--databases', replaceDatabases: '--replace-databases' };

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

export function registerRestoreCommand(program: Command, context: () => CommandContext): void {
  program
    .command('restore')
    .description(
      'Restore a backup into a database, from a run id or, with no catalog at all, from the URL of its manifest.json. The artifact is checked against its manifest before pg_restore runs.',
    )
    .argument('<run-id|manifest-url>', 'a succeeded run id, or s3://…/manifest.json, file:///…/manifest.json, a path')
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
    .action(
      async (
        source: string,
        options: {
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
        },
      ) => {
        const ctx = context();
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
            { via: 'cli' },
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
        const controller = new AbortController();
        const onSignal = () => controller.abort(new BackstopError('CANCELLED', 'Restore cancelled by a signal.'));
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        const display = createProgressDisplay(!options.json);
        try {
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
            signal: controller.signal,
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
        } catch (error) {
          if (options.json) printJson(outcome({ status: 'failed', error: describeCliError(error) }));
          throw error;
        } finally {
          display.done();
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      },
    );
}
