import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { parseIdentities, type AgeIdentity } from '../../pipeline/age.ts';
import { describeDatabase, parseDatabaseUrl } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { describeCliError } from '../osError.ts';
import { appendRunEvent } from '../../db/runEvents.ts';
import { getRun } from '../../db/runRecords.ts';
import { restoreArtifact } from '../../pipeline/restore.ts';
import { openStorageEndpoint, storageEndpointFromEnv } from '../../pipeline/supabaseSource/storageEndpoint.ts';
import { restoreStorageObjects, storageFilesOf } from '../../pipeline/supabaseSource/storageObjects.ts';
import { readManifest } from '../../pipeline/readManifest.ts';
import { readRunManifest } from '../../pipeline/readRunManifest.ts';
import type { RunRecord } from '../../db/runRecords.ts';
import { locateManifest, looksLikeManifestUrl } from '../../storage/manifestLocation.ts';
import { openStore } from '../../storage/openStore.ts';
import { createProgressReporter } from '../progressReporter.ts';
import { collect } from './targetOptions.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../output.ts';
import { looksLikeRunId, resolveRunId } from '../runIdArgument.ts';

export async function readIdentityFile(file: string): Promise<AgeIdentity[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new BackstopError('INVALID_INPUT', `Cannot read the identity file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`);
  }
  return parseIdentities(text);
}

export function registerRestoreCommand(program: Command, context: () => CommandContext): void {
  program
    .command('restore')
    .description(
      'Restore a backup into a database, from a run id or, with no catalog at all, from the URL of its manifest.json. The artifact is checked against its manifest before pg_restore runs.',
    )
    .argument('<run-id|manifest-url>', 'a succeeded run id, or s3://…/manifest.json, file:///…/manifest.json, a path')
    .requiredOption('--to <database-url>', 'database to restore into (must be empty unless --clean)')
    .option('--clean', 'drop and recreate objects the backup contains')
    .option('--jobs <n>', 'parallel pg_restore jobs (1 = one transaction, all or nothing)', '1')
    .option('--schema <name>', 'restore only this schema; repeatable', collect, [])
    .option('--table <name>', 'restore only tables of this name; repeatable', collect, [])
    .option('--identity <file>', 'age identity file, for an encrypted backup')
    .option('--no-owner', 'do not restore ownership and privileges (for a server without the same roles)')
    .option('--with-storage', 'Supabase backups taken --with-storage: also write the Storage objects back through the S3 endpoint (SUPABASE_STORAGE_S3_ENDPOINT and keys)')
    .option('--json', 'print the result as JSON')
    .action(
      async (
        source: string,
        options: { to: string; clean?: boolean; jobs: string; schema: string[]; table: string[]; owner: boolean; identity?: string; withStorage?: boolean; json?: boolean },
      ) => {
        const ctx = context();
        parseDatabaseUrl(options.to);
        const jobs = Number(options.jobs);
        if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
          throw new BackstopError('INVALID_INPUT', `--jobs must be a whole number from 1 to 64, got "${options.jobs}".`);
        }
        const identities = options.identity ? await readIdentityFile(options.identity) : undefined;
        const storageConfig = options.withStorage ? storageEndpointFromEnv(process.env) : null;

        // A manifest URL needs no catalog: the catalog is never opened (nor the embedded one started).
        let runId: string | null = null;
        // A backup named by run id must be that run's own (readRunManifest); a manifest URL is the operator's choice.
        let backup: (RunRecord & { artifact: NonNullable<RunRecord['artifact']> }) | null = null;
        let location: { storeUrl: string; prefix: string };
        if (looksLikeManifestUrl(source)) {
          location = locateManifest(source);
        } else if (looksLikeRunId(source)) {
          const { pool } = await ctx.catalog();
          const run = await getRun(pool, await resolveRunId(pool, source));
          if (run.kind !== 'backup' || run.status !== 'succeeded' || !run.artifact) {
            throw new BackstopError(
              'INVALID_INPUT',
              `Run ${run.id} is ${run.kind === 'backup' ? run.status : 'a verification'}; only a succeeded backup can be restored. List them with \`backstop runs --status succeeded\`.`,
            );
          }
          runId = run.id;
          backup = { ...run, artifact: run.artifact };
          location = { storeUrl: run.artifact.storeUrl, prefix: run.artifact.prefix };
        } else {
          throw new BackstopError('RUN_NOT_FOUND', `"${source}" is neither a run id (a UUID) nor a manifest URL. List runs with \`backstop runs\`.`);
        }

        // With --json the outcome is one document shaped like a run's (id, status, error, times),
        // whether the restore succeeded or not.
        const startedAt = new Date().toISOString();
        let backupRunId = runId;
        const outcome = (fields: Record<string, unknown>) => ({
          runId: backupRunId,
          kind: 'restore',
          startedAt,
          finishedAt: new Date().toISOString(),
          ...fields,
        });
        const store = await openStore(location.storeUrl);
        let target: string | null = backup?.targetName ?? null;
        try {
          const { manifest } = backup ? await readRunManifest(store, backup) : await readManifest(store, location.prefix);
          backupRunId ??= manifest.runId;
          target = manifest.target;
          const storageObjects = storageFilesOf(manifest).length;
          if (storageConfig && storageObjects === 0 && !manifest.storage) {
            throw new BackstopError(
              'INVALID_INPUT',
              `Backup ${manifest.runId} holds no Supabase Storage objects (it was taken without --with-storage); restore it without --with-storage.`,
            );
          }
          const controller = new AbortController();
          const onSignal = () => controller.abort(new BackstopError('CANCELLED', 'Restore cancelled by a signal.'));
          process.once('SIGINT', onSignal);
          process.once('SIGTERM', onSignal);
          const progress = createProgressReporter(!options.json);
          const started = performance.now();
          try {
            const result = await restoreArtifact({
              store,
              prefix: location.prefix,
              manifest,
              toUrl: options.to,
              clean: options.clean,
              jobs,
              schemas: options.schema,
              tables: options.table,
              noOwner: !options.owner,
              identities,
              pgTools: ctx.config.pgTools,
              signal: controller.signal,
              onProgress: (next) => progress.update({ phase: next.phase, done: next.bytesRead, total: next.bytesTotal, elapsedMs: next.elapsedMs }),
            });
            progress.done();
            let storage: { objects: number; bytes: number; buckets: string[] } | null = null;
            if (storageConfig) {
              const endpoint = openStorageEndpoint(storageConfig);
              try {
                storage = await restoreStorageObjects({ endpoint, store, prefix: location.prefix, manifest, identities, signal: controller.signal });
              } finally {
                endpoint.close();
              }
            }
            const elapsedMs = Math.round(performance.now() - started);
            if (runId) {
              const { pool } = await ctx.catalog();
              await appendRunEvent(pool, {
                runId,
                kind: 'restored',
                message: `restored into ${describeDatabase(options.to)}`,
                data: { tablesChecked: result.tablesChecked, elapsedMs, ...(storage ? { storageObjects: storage.objects } : {}) },
              });
            }
            if (options.json) printJson(outcome({ target, status: 'restored', error: null, ...result, storage, elapsedMs }));
            else {
              process.stdout.write(
                `Restored backup ${manifest.runId} of ${manifest.target} (${result.tablesChecked} tables, row counts checked) in ${(elapsedMs / 1000).toFixed(1)} s\n`,
              );
              if (storage) process.stdout.write(`Restored ${storage.objects} Storage object(s) (${storage.bytes} bytes) into ${storage.buckets.length} bucket(s)\n`);
              else if (storageObjects > 0) process.stdout.write(`The backup also holds ${storageObjects} Storage object(s), not restored: pass --with-storage to write them back\n`);
            }
          } finally {
            progress.done();
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          }
        } catch (error) {
          if (options.json) printJson(outcome({ target, status: 'failed', error: describeCliError(error) }));
          throw error;
        } finally {
          await store.close();
        }
      },
    );
}
