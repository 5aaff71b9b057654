import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { parseIdentities, type AgeIdentity } from '../../pipeline/age.ts';
import { describeDatabase, parseDatabaseUrl } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { appendRunEvent, getRun } from '../../db/runs.ts';
import { restoreArtifact } from '../../pipeline/restore.ts';
import { readManifest } from '../../pipeline/readManifest.ts';
import { openStore } from '../../storage/openStore.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../output.ts';

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
    .description('Restore a succeeded run into a database. The artifact is checked against its manifest before pg_restore runs.')
    .argument('<run-id>', 'run id')
    .requiredOption('--to <database-url>', 'database to restore into (must be empty unless --clean)')
    .option('--clean', 'drop and recreate objects the backup contains')
    .option('--jobs <n>', 'parallel pg_restore jobs (1 = one transaction, all or nothing)', '1')
    .option('--identity <file>', 'age identity file, for an encrypted backup')
    .option('--no-owner', 'do not restore ownership and privileges (for a server without the same roles)')
    .option('--json', 'print the result as JSON')
    .action(async (runId: string, options: { to: string; clean?: boolean; jobs: string; owner: boolean; identity?: string; json?: boolean }) => {
      const ctx = context();
      parseDatabaseUrl(options.to);
      const jobs = Number(options.jobs);
      if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
        throw new BackstopError('INVALID_INPUT', `--jobs must be a whole number from 1 to 64, got "${options.jobs}".`);
      }
      const identities = options.identity ? await readIdentityFile(options.identity) : undefined;
      const { pool } = await ctx.catalog();
      const run = await getRun(pool, runId);
      if (run.status !== 'succeeded' || !run.artifact) {
        throw new BackstopError('INVALID_INPUT', `Run ${runId} is ${run.status}; only a succeeded run has a backup to restore. List them with \`backstop runs --status succeeded\`.`);
      }
      const store = await openStore(run.artifact.storeUrl);
      try {
        const { manifest, sha256 } = await readManifest(store, run.artifact.prefix);
        if (sha256 !== run.artifact.manifest.sha256) {
          throw new BackstopError('ARTIFACT_CORRUPT', `The manifest of run ${runId} no longer matches the checksum recorded in the catalog; the artifact was altered.`);
        }
        const controller = new AbortController();
        const onSignal = () => controller.abort(new BackstopError('CANCELLED', 'Restore cancelled by a signal.'));
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        const started = performance.now();
        try {
          const result = await restoreArtifact({
            store,
            prefix: run.artifact.prefix,
            manifest,
            toUrl: options.to,
            clean: options.clean,
            jobs,
            noOwner: !options.owner,
            identities,
            pgTools: ctx.config.pgTools,
            signal: controller.signal,
          });
          const elapsedMs = Math.round(performance.now() - started);
          await appendRunEvent(pool, {
            runId,
            kind: 'restored',
            message: `restored into ${describeDatabase(options.to)}`,
            data: { tablesChecked: result.tablesChecked, elapsedMs },
          });
          if (options.json) printJson({ runId, status: 'restored', ...result, elapsedMs });
          else process.stdout.write(`Restored run ${runId} (${result.tablesChecked} tables, row counts checked) in ${(elapsedMs / 1000).toFixed(1)} s\n`);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      } finally {
        await store.close();
      }
    });
}
