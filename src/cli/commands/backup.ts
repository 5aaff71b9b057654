import type { Command } from 'commander';
import { databaseName } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import { describeProblems } from '../../core/inputProblems.ts';
import { claimRun } from '../../operations/claimRun.ts';
import { claimOneShotRun, discardOneShotTarget, ensureOneShotTarget, TargetSettingsDiffer, type OneShotTarget } from '../../operations/targets/oneShotTarget.ts';
import type { TargetCreateInput } from '../../operations/targets/targetInput.ts';
import type { CommandContext } from '../context.ts';
import { openHttpRunner, remoteRunnerName, remoteRunnerOptionHelp, remoteRunnerSettings, type RemoteRunnerFlags } from '../remoteRunner.ts';
import { runInForeground } from './runInForeground.ts';
import { resolveRunId } from '../../operations/resolveRunId.ts';
import { storageEndpointFromEnv } from '../../pipeline/supabaseSource/storageEndpoint.ts';
import { addDumpOptions, flagFor, optionsFromFlags, sayingFlags, storeUrlFor, streamJobsFromFlags, type DumpFlags } from './targetOptions.ts';

/** The target a one-shot backup files under: --target, else its database's name made into a target name. */
function oneShotName(databaseUrl: string, given: string | undefined): string {
  if (given !== undefined) return given;
  try {
    return sanitizeTargetName(databaseName(databaseUrl));
  } catch {
    // The URL's own problem is reported with its field by the operation.
    return 'database';
  }
}

const backupFlagNames = { name: '--target', databaseUrl: 'DATABASE_URL' };

export function registerBackupCommands(program: Command, context: () => CommandContext): void {
  addDumpOptions(
    program
      .command('backup')
      .description(
        'Back up a database now, in this process, through the same claim / lease / finalize path as every run. A new target is checked and registered first, and removed again if this first backup fails.',
      )
      .argument('<database-url>', 'postgres://USER:PASSWORD@HOST:PORT/DATABASE')
      .option('--store <url>', "where to store it (file:///path, a folder, s3://bucket/prefix); default: the target's store or BACKSTOP_STORE")
      .option('--target <name>', 'target name to file it under (default: the database name)'),
    ' (for a new target; an existing one must already have it: change it with `target update`)',
  )
    .option('--jobs <n>', `pg_dump streams at once, each of its own tables, from one snapshot (default 1; for a new target, as with --compression)`)
    .option('--json', 'print the run as one JSON document')
    .action((databaseUrl: string, flags: DumpFlags & { store?: string; target?: string; json?: boolean; jobs?: string }) =>
      sayingFlags(backupFlagNames, async () => {
        const ctx = context();
        const name = oneShotName(databaseUrl, flags.target);
        const options = { ...optionsFromFlags(flags), ...streamJobsFromFlags(flags, false) };
        const input: TargetCreateInput = {
          name,
          databaseUrl,
          ...(flags.store !== undefined ? { storeUrl: storeUrlFor(flags.store) } : {}),
          ...(Object.keys(options).length > 0 ? { options } : {}),
        };
        // The backup runs here: without the endpoint it would fail after the dump; say so now.
        if (flags.withStorage) storageEndpointFromEnv(process.env);
        const deps = { pool: (await ctx.catalog()).pool, config: ctx.config };
        let prepared: OneShotTarget;
        try {
          prepared = await ensureOneShotTarget(deps, input, ctx.actor);
        } catch (error) {
          if (error instanceof TargetSettingsDiffer) throw settingsDifferError(error, name);
          throw error;
        }
        const { target, created } = prepared;
        let succeeded = false;
        try {
          const claimed = await claimOneShotRun(
            deps,
            target,
            { runDeadlineMs: ctx.config.runDeadlineMs, leaseTtlMs: ctx.config.leaseTtlMs, claimedBy: `backup:${process.pid}` },
            ctx.actor,
          );
          succeeded = (await runInForeground(ctx, claimed, { json: flags.json })).status === 'succeeded';
        } finally {
          // A target this command made and whose first backup failed is removed with that run:
          // a failed one-shot backup leaves the target list as it was.
          if (created && !succeeded) {
            const removed = await discardOneShotTarget(deps, target, ctx.actor).catch(() => false);
            process.stderr.write(
              removed
                ? `backstop: target "${target.name}" was not kept: this was its first backup and it did not succeed. Fix the cause and run the command again.\n`
                : `backstop: target "${target.name}" could not be removed after its first backup failed; delete it with \`backstop target delete ${target.name}\` if you do not want it.\n`,
            );
          }
        }
      }),
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
      const claimed = await claimRun(ctx.db, ctx.config, await resolveRunId(ctx.db, runId), `run:${process.pid}`);
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

/**
 * Settings given for an existing target that differ from its own are refused, never ignored
 * nor applied behind the user's back: say which, and the two ways on.
 */
function settingsDifferError(error: TargetSettingsDiffer, name: string): BackstopError {
  const flagOf = (field: string) => flagFor(field, backupFlagNames);
  const update = error.differences.flatMap(({ field, value }) =>
    value === true ? [flagOf(field)] : (Array.isArray(value) ? value : [String(value)]).map((item) => `${flagOf(field)} ${item}`),
  );
  return new BackstopError(
    'INVALID_INPUT',
    `${describeProblems(error.fields ?? [], flagOf)} Change the target with \`backstop target update ${name} ${update.join(' ')}\`, or back this database up under another name with --target NEW_NAME.`,
    { cause: error },
  );
}
