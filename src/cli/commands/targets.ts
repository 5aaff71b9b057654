import type { Command } from 'commander';
import { parseDatabaseUrl } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { databaseNow } from '../../db/retention.ts';
import { createTarget, getTarget, listTargets, updateTargetPolicies, type TargetRecord } from '../../db/targets.ts';
import { parseRecipient } from '../../pipeline/age.ts';
import { parseCompression } from '../../pipeline/compression.ts';
import { assertTargetEndpointsAllowed } from '../../net/outboundGuard.ts';
import { addPolicyOptions, describePolicies, parsePolicyOptions, type PolicyOptions } from './schedule.ts';
import { assertStorageProfile, collect, githubExecutorConfig, parseProfile, storeUrlFor, targetOptions } from './targetOptions.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../output.ts';

function targetJson(target: TargetRecord) {
  return {
    id: target.id,
    name: target.name,
    storeUrl: target.storeUrl,
    options: target.options,
    exclusive: target.exclusive,
    maxAttempts: target.maxAttempts,
    schedule: target.schedule,
    retention: target.retention,
    verification: target.verification,
    notifications: target.notifications,
    createdAt: target.createdAt,
  };
}

export function registerTargetCommands(program: Command, context: () => CommandContext): void {
  const target = program.command('target').description('Manage backup targets (databases to back up).');
  const add = target
    .command('add')
    .description('Register a database to back up.')
    .argument('<name>', 'lowercase name: letters, digits, ".", "_", "-"')
    .requiredOption('--database-url <url>', 'postgres://USER:PASSWORD@HOST:PORT/DATABASE (stored, never shown again)')
    .option('--store <url>', 'file:///path, a folder, or s3://bucket/prefix (default: BACKSTOP_STORE)')
    .option('--compression <algorithm>', 'zstd, zstd:LEVEL, gzip, gzip:LEVEL or none')
    .option('--encrypt-to <recipient>', 'age recipient (age1…) to encrypt to; repeatable', collect, [])
    .option('--profile <profile>', 'default (one pg_dump archive) or supabase (roles, schema and data files, as `supabase db dump` splits them)')
    .option('--max-attempts <n>', 'attempts per run when a runner dies (1 = no retry)', '1')
    .option('--checksums', 'record a content checksum per table at dump time, for `verify --checksums`')
    .option('--with-storage', 'with --profile supabase: also copy the Storage objects through the S3 endpoint (SUPABASE_STORAGE_S3_* where the backup runs)')
    .option('--github <owner/repo>', 'run its backups on GitHub Actions in this repository (see `backstop init github`)')
    .option('--github-workflow <file>', 'workflow file name', 'backstop-backup.yml')
    .option('--github-ref <ref>', 'branch or tag the workflow runs on', 'main')
    .option('--json', 'print the target as JSON');
  addPolicyOptions(add).action(
    async (
      name: string,
      options: PolicyOptions & {
        databaseUrl: string;
        store?: string;
        compression?: string;
        encryptTo: string[];
        profile?: string;
        maxAttempts: string;
        checksums?: boolean;
        withStorage?: boolean;
        github?: string;
        githubWorkflow: string;
        githubRef: string;
        json?: boolean;
      },
    ) => {
      const ctx = context();
      parseDatabaseUrl(options.databaseUrl);
      if (options.compression) parseCompression(options.compression);
      const profile = options.profile === undefined ? undefined : parseProfile(options.profile);
      assertStorageProfile(options.withStorage, profile);
      const maxAttempts = Number(options.maxAttempts);
      if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 10) {
        throw new BackstopError('INVALID_INPUT', `--max-attempts must be a whole number from 1 to 10, got "${options.maxAttempts}".`);
      }
      const { patch, generatedSecrets } = parsePolicyOptions(options);
      const storeUrl = options.store ? storeUrlFor(options.store) : undefined;
      await assertTargetEndpointsAllowed({ storeUrl, channels: patch.addChannels });
      const { pool } = await ctx.catalog();
      const created = await createTarget(pool, {
        name,
        databaseUrl: options.databaseUrl,
        storeUrl: storeUrl ?? ctx.config.defaultStoreUrl,
        options: {
          ...targetOptions(options.compression, options.encryptTo.map(parseRecipient), profile, options.withStorage),
          ...(options.checksums ? { checksums: true } : {}),
        },
        maxAttempts,
        executor: options.github ? githubExecutorConfig(options.github, options.githubWorkflow, options.githubRef) : null,
        schedule: patch.schedule,
        retention: patch.retention,
        verification: patch.verification,
        notifications: patch.addChannels,
      });
      if (options.json) printJson({ ...targetJson(created), ...(generatedSecrets.length > 0 ? { webhookSecrets: generatedSecrets } : {}) });
      else {
        process.stdout.write(`Target ${created.name} added; backups go to ${created.storeUrl}\n`);
        process.stdout.write(describePolicies(created, generatedSecrets, await databaseNow(pool)));
      }
    },
  );
  // --schedule is defined before --no-schedule: commander then leaves it undefined when neither is given.
  addPolicyOptions(target.command('update').description("Change a target's schedule, retention, drills or notifications.").argument('<name>', 'target name'))
    .option('--no-schedule', 'remove the schedule')
    .option('--no-retention', 'remove the retention policy (keep every backup)')
    .option('--no-verify', 'remove the drill schedule (--verify-every, --verify-cron)')
    .option('--clear-notifications', 'remove every notification channel (before adding the ones given)')
    .option('--json', 'print the target as JSON')
    .action(async (name: string, options: PolicyOptions & { json?: boolean }) => {
      const ctx = context();
      const { pool } = await ctx.catalog();
      const current = await getTarget(pool, name);
      const { patch, generatedSecrets } = parsePolicyOptions(options, current);
      if (Object.keys(patch).length === 0) {
        throw new BackstopError(
          'INVALID_INPUT',
          'Nothing to change: pass --schedule, --timezone, --keep-*, --verify-every, --verify-cron, --notify-*, --no-schedule, --no-retention, --no-verify or --clear-notifications.',
        );
      }
      await assertTargetEndpointsAllowed({ channels: patch.addChannels });
      const updated = await updateTargetPolicies(pool, name, patch);
      if (options.json) printJson({ ...targetJson(updated), ...(generatedSecrets.length > 0 ? { webhookSecrets: generatedSecrets } : {}) });
      else {
        process.stdout.write(`Target ${updated.name} updated.\n`);
        process.stdout.write(describePolicies(updated, generatedSecrets, await databaseNow(pool)));
      }
    });
  target
    .command('list')
    .description('List targets (database URLs are secrets and never shown).')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const ctx = context();
      const { pool } = await ctx.catalog();
      const targets = await listTargets(pool);
      if (options.json) printJson(targets.map(targetJson));
      else if (targets.length === 0) process.stdout.write('No targets yet. Add one with `backstop target add NAME --database-url URL`.\n');
      else
        process.stdout.write(
          `${table(
            ['NAME', 'STORE', 'CREATED'],
            targets.map((t) => [t.name, t.storeUrl, t.createdAt]),
          )}\n`,
        );
    });
}
