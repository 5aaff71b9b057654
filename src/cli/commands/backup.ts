import type { Command } from 'commander';
import { databaseName, parseDatabaseUrl } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { claimRunById } from '../../db/runLeases.ts';
import { createRun } from '../../db/runRecords.ts';
import { ensureTarget } from '../../db/targets.ts';
import { parseRecipient } from '../../pipeline/age.ts';
import { parseCompression } from '../../pipeline/compression.ts';
import type { CommandContext } from '../context.ts';
import { openHttpRunner, remoteRunnerName, remoteRunnerOptionHelp, remoteRunnerSettings, type RemoteRunnerFlags } from '../remoteRunner.ts';
import { runInForeground } from './runInForeground.ts';
import { resolveRunId } from '../runIdArgument.ts';
import { assertTargetEndpointsAllowed } from '../../net/outboundGuard.ts';
import { storageEndpointFromEnv } from '../../pipeline/supabaseSource/storageEndpoint.ts';
import { assertStorageProfile, collect, parseProfile, storeUrlFor, targetOptions } from './targetOptions.ts';

export function registerBackupCommands(program: Command, context: () => CommandContext): void {
  program
    .command('backup')
    .description('Back up a database now, in this process, through the same claim / lease / finalize path as every run.')
    .argument('<database-url>', 'postgres://USER:PASSWORD@HOST:PORT/DATABASE')
    .option('--store <url>', "where to store it (file:///path, a folder, s3://bucket/prefix); default: the target's store or BACKSTOP_STORE")
    .option('--target <name>', 'target name to file it under (default: the database name)')
    .option('--compression <algorithm>', 'zstd, zstd:LEVEL, gzip, gzip:LEVEL or none (for a new target)')
    .option('--encrypt-to <recipient>', 'age recipient (age1…) to encrypt to; repeatable (for a new target)', collect, [])
    .option('--profile <profile>', 'default (one pg_dump archive) or supabase (roles, schema and data files, as `supabase db dump` splits them) (for a new target)')
    .option('--with-storage', 'with --profile supabase: also copy the Storage objects through the S3 endpoint (SUPABASE_STORAGE_S3_ENDPOINT and keys) (for a new target)')
    .option('--json', 'print the run as one JSON document')
    .action(
      async (databaseUrl: string, options: { store?: string; target?: string; compression?: string; encryptTo: string[]; profile?: string; withStorage?: boolean; json?: boolean }) => {
        const ctx = context();
        parseDatabaseUrl(databaseUrl);
        if (options.compression) parseCompression(options.compression);
        const encryptTo = options.encryptTo.map(parseRecipient);
        const profile = options.profile === undefined ? undefined : parseProfile(options.profile);
        assertStorageProfile(options.withStorage, profile);
        // The backup runs here: without the endpoint it would fail after the dump; say so now.
        if (options.withStorage) storageEndpointFromEnv(process.env);
        const name = options.target ?? sanitizeTargetName(databaseName(databaseUrl));
        const { pool } = await ctx.catalog();
        const storeUrl = options.store ? storeUrlFor(options.store) : ctx.config.defaultStoreUrl;
        // A new target's store is refused here, as by `target add`, not after the dump.
        if (options.store) await assertTargetEndpointsAllowed({ storeUrl });
        const target = await ensureTarget(pool, {
          name,
          databaseUrl,
          storeUrl,
          options: targetOptions(options.compression, encryptTo, profile, options.withStorage),
        });
        if (profile && (target.options.profile ?? 'default') !== profile) {
          throw new BackstopError(
            'INVALID_INPUT',
            `Target "${name}" already exists with the ${target.options.profile ?? 'default'} profile. Use --target NEW_NAME for a target with the ${profile} profile.`,
          );
        }
        if (options.withStorage && target.options.withStorage !== true) {
          throw new BackstopError('INVALID_INPUT', `Target "${name}" already exists without --with-storage. Use --target NEW_NAME for a target whose backups copy Storage objects.`);
        }
        if (encryptTo.length > 0 && JSON.stringify(target.options.encryptTo ?? []) !== JSON.stringify(encryptTo)) {
          throw new BackstopError('INVALID_INPUT', `Target "${name}" already exists with other encryption recipients. Use --target NEW_NAME for a target encrypted to these.`);
        }
        if (options.store && target.storeUrl !== storeUrl) {
          throw new BackstopError('INVALID_INPUT', `Target "${name}" stores its backups at ${target.storeUrl}, not ${storeUrl}. Use --target NEW_NAME for a target with another store.`);
        }
        const run = await createRun(pool, { targetId: target.id, trigger: 'cli', runDeadlineMs: ctx.config.runDeadlineMs });
        const claimed = await claimRunById(pool, run.id, { leaseTtlMs: ctx.config.leaseTtlMs, claimedBy: `backup:${process.pid}` });
        await runInForeground(ctx, claimed, { json: options.json });
      },
    );

  program
    .command('run')
    .description(
      'Execute exactly one queued or dispatched run (what a CI job calls), through the catalog or, with an API URL and a runner token, over HTTP. Refuses unknown, running or finished runs.',
    )
    .argument('<run-id>', 'the run id printed by `backstop trigger`')
    .option('--json', 'print the run as one JSON document')
    .option('--api-url <url>', remoteRunnerOptionHelp.apiUrl)
    .option('--token <token>', remoteRunnerOptionHelp.token)
    .action(async (runId: string, options: { json?: boolean } & RemoteRunnerFlags) => {
      const ctx = context();
      const remote = remoteRunnerSettings(ctx.config, options);
      if (remote) {
        // Over HTTP: this process never opens the catalog (nor starts an embedded one).
        const runner = openHttpRunner(ctx, remote);
        const claim = await runner.claim(runId, remoteRunnerName(process.env));
        await runInForeground(ctx, claim.run, {
          json: options.json,
          remote: { catalog: runner.catalog, leaseTtlMs: claim.leaseTtlMs, heartbeatIntervalMs: claim.heartbeatIntervalMs },
        });
        return;
      }
      const { pool } = await ctx.catalog();
      const claimed = await claimRunById(pool, await resolveRunId(pool, runId), { leaseTtlMs: ctx.config.leaseTtlMs, claimedBy: `run:${process.pid}` });
      await runInForeground(ctx, claimed, { json: options.json });
    });
}

function sanitizeTargetName(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63);
  return cleaned || 'database';
}
