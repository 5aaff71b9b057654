import type { Command } from 'commander';
import { BackstopError, errorCodes } from '../../core/errors.ts';
import { addTarget } from '../../operations/targets/addTarget.ts';
import { deleteTarget } from '../../operations/targets/deleteTarget.ts';
import { listTargets, showTarget } from '../../operations/targets/listTargets.ts';
import { pauseTarget, resumeTarget } from '../../operations/targets/pauseTarget.ts';
import { renameTarget } from '../../operations/targets/renameTarget.ts';
import type { TargetDeps, TargetRecord } from '../../operations/targets/targetDeps.ts';
import type { TargetCreateInput, TargetUpdateInput } from '../../operations/targets/targetInput.ts';
import { testTarget } from '../../operations/targets/testTarget.ts';
import { updateTarget } from '../../operations/targets/updateTarget.ts';
import type { CommandContext } from '../context.ts';
import { describeAlarms } from './alarms.ts';
import { formatBytes } from '../../core/formatBytes.ts';
import { printJson, table } from '../output.ts';
import { addPolicyOptions, describePolicies, parsePolicyOptions, type PolicyOptions } from './schedule.ts';
import type { TargetChange } from '../../operations/targets/continuity.ts';
import { describeContinuity } from './window.ts';
import {
  addContinuousOptions,
  continuousFromFlags,
  type ContinuousFlags,
  addDumpOptions,
  addServerOptions,
  serverOptionsFromFlags,
  streamJobsFromFlags,
  type ServerFlags,
  collect,
  flagNumber,
  githubExecutor,
  optionsFromFlags,
  sayingFlags,
  storeUrlFor,
  type DumpFlags,
} from './targetOptions.ts';

/** The `--json` shape of a target: what the API answers, never a URL with a password, never a channel URL. */
export function targetJson(target: TargetRecord) {
  return {
    id: target.id,
    name: target.name,
    database: target.database,
    storeUrl: target.storeUrl,
    options: target.options,
    exclusive: target.exclusive,
    maxAttempts: target.maxAttempts,
    paused: target.paused,
    maxBackupAge: target.maxBackupAge,
    ping: target.ping,
    schedule: target.schedule,
    retention: target.retention,
    verification: target.verification,
    notifications: target.notifications,
    executor: target.executor,
    continuous: target.continuous,
    createdAt: target.createdAt,
    updatedAt: target.updatedAt,
  };
}

function describeDatabase(target: TargetRecord): string {
  const database = target.database;
  if (!database) return 'none yet (set one with `backstop target update NAME --database-url URL`)';
  const where = `${database.host}${database.port !== null ? `:${database.port}` : ''}${database.user ? ` as ${database.user}` : ''}`;
  if (target.options.profile !== 'server') return `${database.database} on ${where}`;
  const server = target.options.server ?? {};
  const databases = server.databases ? server.databases.join(', ') : 'every database at each run';
  const excluded = server.excludeDatabases?.length ? ` except ${server.excludeDatabases.join(', ')}` : '';
  return `the whole server ${where}: ${databases}${excluded}; globals ${server.globals ?? 'roles+passwords'}; ${server.jobs ?? 1} database(s) at once`;
}

/** What `target show` prints (and add/update after their one-line summary). */
function describeTarget(target: TargetRecord): string {
  const options = target.options;
  const lines = [
    `target ${target.name}${target.paused ? ' (paused: no scheduled backups or drills)' : ''}`,
    `  database: ${describeDatabase(target)}`,
    `  store: ${target.storeUrl}`,
    `  dump: ${options.profile ?? 'default'} profile, compression ${options.compression ?? 'zstd'}${options.checksums ? ', checksums' : ''}${options.withStorage ? ', Storage objects' : ''}`,
    `  encryption: ${options.encryptTo?.length ? `age, to ${options.encryptTo.join(', ')}` : 'none'}`,
    `  runs: ${target.exclusive ? 'one at a time' : 'several at once'}, ${target.maxAttempts} attempt(s) each${target.executor ? `, on GitHub Actions (${target.executor.owner}/${target.executor.repo}, ${target.executor.workflow} on ${target.executor.ref})` : ''}`,
  ];
  if (Array.isArray(options.restoreTo) && options.restoreTo.length > 0) lines.push(`  operators restore into: ${options.restoreTo.join(', ')}`);
  const continuous = target.continuous;
  if (continuous) {
    lines.push(
      `  continuous: ${continuous.tables ? continuous.tables.join(', ') : 'every table it can follow safely'}; segments of ${continuous.segmentSeconds} s or ${formatBytes(continuous.segmentBytes)}; slot alarm over ${formatBytes(continuous.slotWarnBytes)}, dropped over ${formatBytes(continuous.slotLimitBytes)}; RPO bound ${continuous.maxRpoSeconds} s`,
    );
  }
  if (!target.schedule) lines.push('  schedule: none (on demand)');
  if (!target.retention) lines.push('  retention: keep every backup');
  if (!target.verification) lines.push('  verification: none');
  return `${lines.join('\n')}\n`;
}

function print(target: TargetChange, json: boolean | undefined, headline: string, generatedSecrets: { channelId: string; secret: string }[] = []): void {
  const { baseRunId, publishedTables, unprotectedTables, warnings } = target;
  if (json) {
    printJson({
      ...targetJson(target),
      ...(generatedSecrets.length > 0 ? { webhookSecrets: generatedSecrets } : {}),
      ...(baseRunId !== undefined ? { baseRunId } : {}),
      ...(unprotectedTables !== undefined ? { publishedTables, unprotectedTables } : {}),
      ...(warnings?.length ? { warnings } : {}),
    });
    return;
  }
  process.stdout.write(`${headline}\n${describeTarget(target)}`);
  process.stdout.write(describePolicies(target, generatedSecrets, Date.now()));
  if (publishedTables !== undefined) process.stdout.write(`Continuous backup follows ${publishedTables} table(s) through the slot and publication ${target.continuous?.slot}.\n`);
  for (const table of unprotectedTables ?? []) process.stdout.write(`Not continuously protected: ${table.schema}.${table.table}: ${table.reason}. Fix: ${table.fix}\n`);
  if (baseRunId !== undefined) process.stdout.write(`First base backup queued as run ${baseRunId}; the window opens once it succeeds.\n`);
  for (const warning of warnings ?? []) process.stderr.write(`Warning: ${warning}\n`);
}

interface AddFlags extends PolicyOptions, DumpFlags, ServerFlags, ContinuousFlags {
  databaseUrl?: string;
  serverUrl?: string;
  store?: string;
  maxAttempts?: string;
  checksums?: boolean;
  restoreTo: string[];
  exclusive: boolean;
  github?: string;
  githubWorkflow: string;
  githubRef: string;
  paused?: boolean;
  skipChecks?: boolean;
  json?: boolean;
}

interface UpdateFlags extends PolicyOptions, DumpFlags, ServerFlags, ContinuousFlags {
  databaseUrl?: string;
  serverUrl?: string;
  store?: string;
  maxAttempts?: string;
  checksums?: boolean;
  /** `--no-encryption`: commander sets false. */
  encryption?: boolean;
  restoreTo: string[] | false;
  exclusive?: boolean;
  github?: string | false;
  githubWorkflow?: string;
  githubRef?: string;
  skipChecks?: boolean;
  json?: boolean;
}

/** `continuous` for `target add`: settings flags without --continuous are refused there. */
function continuousInput(flags: ContinuousFlags): Pick<TargetCreateInput, 'continuous'> {
  const continuous = continuousFromFlags(flags);
  return continuous === undefined ? {} : { continuous };
}

/** The input `target update` sends: only what the flags change, options merged into the current ones. */
function updateInput(flags: UpdateFlags, current: TargetRecord): { input: TargetUpdateInput; generatedSecrets: { channelId: string; secret: string }[] } {
  const { input: policies, generatedSecrets } = parsePolicyOptions(flags, current);
  const input: TargetUpdateInput = { ...policies };
  if (flags.databaseUrl !== undefined) input.databaseUrl = flags.databaseUrl;
  if (flags.serverUrl !== undefined) input.serverUrl = flags.serverUrl;
  if (flags.store !== undefined) input.storeUrl = storeUrlFor(flags.store);
  if (flags.maxAttempts !== undefined) input.maxAttempts = flagNumber(flags.maxAttempts);
  if (flags.exclusive !== undefined) input.exclusive = flags.exclusive;
  const changed = optionsFromFlags(flags);
  if (flags.checksums !== undefined) changed.checksums = flags.checksums;
  if (flags.withStorage === false) changed.withStorage = false;
  const serverTarget = flags.serverUrl !== undefined || (flags.profile ?? current.options.profile) === 'server';
  Object.assign(changed, streamJobsFromFlags(flags, serverTarget));
  const server = serverOptionsFromFlags(serverTarget ? flags : { ...flags, jobs: undefined }, (current.options.server ?? {}) as Record<string, unknown>);
  if (server) changed.server = server as typeof changed.server;
  if (Array.isArray(flags.restoreTo) && flags.restoreTo.length > 0) changed.restoreTo = flags.restoreTo;
  const removeEncryption = flags.encryption === false;
  const removeRestoreTo = flags.restoreTo === false;
  if (Object.keys(changed).length > 0 || removeEncryption || removeRestoreTo) {
    // `options` replaces the whole set: what the flags do not mention is sent as it is.
    const { encryptTo, restoreTo, ...kept } = current.options;
    input.options = {
      ...kept,
      ...(removeEncryption || encryptTo === undefined ? {} : { encryptTo }),
      ...(removeRestoreTo || restoreTo === undefined ? {} : { restoreTo }),
      ...changed,
    } as TargetUpdateInput['options'];
  }
  const continuous = continuousFromFlags(flags, current.continuous !== null);
  if (continuous !== undefined) input.continuous = continuous;
  if (flags.github === false) input.executor = null;
  else if (flags.github !== undefined) input.executor = githubExecutor(flags.github, flags.githubWorkflow, flags.githubRef);
  else if ((flags.githubWorkflow !== undefined || flags.githubRef !== undefined) && current.executor) {
    input.executor = {
      ...current.executor,
      ...(flags.githubWorkflow !== undefined ? { workflow: flags.githubWorkflow } : {}),
      ...(flags.githubRef !== undefined ? { ref: flags.githubRef } : {}),
    };
  }
  if (Object.keys(input).length === 0) {
    throw new BackstopError(
      'INVALID_INPUT',
      'Nothing to change: pass what to change, e.g. --database-url, --store, --compression, --encrypt-to, --no-encryption, --max-attempts, --schedule, --keep-*, --verify-every, --notify-*, --github (see `backstop target update --help`).',
    );
  }
  if (flags.skipChecks) input.checks = false;
  return { input, generatedSecrets };
}

export function registerTargetCommands(program: Command, context: () => CommandContext): void {
  const target = program.command('target').description('Manage backup targets (databases to back up): add, update, rename, pause, resume, test, delete, list, show.');
  const deps = async (): Promise<TargetDeps> => {
    const ctx = context();
    return { pool: (await ctx.catalog()).pool, config: ctx.config };
  };

  const add = addDumpOptions(
    target
      .command('add')
      .description('Register a database to back up, after checking that the database answers, a fitting pg_dump is installed and the store takes a write.')
      .argument('<name>', 'lowercase name: letters, digits, ".", "_", "-"')
      .option('--database-url <url>', 'postgres://USER:PASSWORD@HOST:PORT/DATABASE (stored, never shown again)')
      .option('--server-url <url>', 'postgres://USER:PASSWORD@HOST:PORT/ — a whole server: its roles and every database (see --databases); instead of --database-url')
      .option('--store <url>', 'file:///path, a folder, or s3://bucket/prefix (default: BACKSTOP_STORE)'),
    '',
  )
    .option('--max-attempts <n>', 'attempts per run when a runner dies (1 = no retry, the default)')
    .option('--checksums', 'record a content checksum per table at dump time, for `verify --checksums`')
    .option('--restore-to <host:port/database>', 'where operators may restore its backups through the API (* for any part); repeatable', collect, [])
    .option('--no-exclusive', 'let several of its runs execute at once')
    .option('--github <owner/repo>', 'run its backups on GitHub Actions in this repository (see `backstop init github`)')
    .option('--github-workflow <file>', 'workflow file name', 'backstop-backup.yml')
    .option('--github-ref <ref>', 'branch or tag the workflow runs on', 'main')
    .option('--paused', 'add it with its schedule paused (`target resume` starts it)')
    .option('--skip-checks', 'store it without reaching the database or the store (e.g. a database only a GitHub runner reaches)')
    .option('--json', 'print the target as JSON');
  addPolicyOptions(addServerOptions(addContinuousOptions(add))).action((name: string, flags: AddFlags) =>
    sayingFlags({ name: 'NAME' }, async () => {
      const { input: policies, generatedSecrets } = parsePolicyOptions(flags);
      const options = optionsFromFlags(flags);
      if (flags.checksums) options.checksums = true;
      if (flags.restoreTo.length > 0) options.restoreTo = flags.restoreTo;
      const serverTarget = flags.serverUrl !== undefined || flags.profile === 'server';
      Object.assign(options, streamJobsFromFlags(flags, serverTarget));
      const server = serverOptionsFromFlags(serverTarget ? flags : { ...flags, jobs: undefined });
      if (server) options.server = server as typeof options.server;
      const input: TargetCreateInput = {
        name,
        ...(flags.databaseUrl !== undefined ? { databaseUrl: flags.databaseUrl } : {}),
        ...(flags.serverUrl !== undefined ? { serverUrl: flags.serverUrl } : {}),
        ...(flags.store !== undefined ? { storeUrl: storeUrlFor(flags.store) } : {}),
        ...(Object.keys(options).length > 0 ? { options } : {}),
        ...(flags.maxAttempts !== undefined ? { maxAttempts: flagNumber(flags.maxAttempts) } : {}),
        ...(flags.exclusive === false ? { exclusive: false } : {}),
        ...(flags.github !== undefined ? { executor: githubExecutor(flags.github, flags.githubWorkflow, flags.githubRef) } : {}),
        ...(flags.paused ? { paused: true } : {}),
        ...continuousInput(flags),
        ...policies,
        ...(flags.skipChecks ? { checks: false } : {}),
      };
      const created = await addTarget(await deps(), input, context().actor);
      print(created, flags.json, `Target ${created.name} added; backups go to ${created.storeUrl}`, generatedSecrets);
    }),
  );

  // Positive flags are defined before their --no- forms: commander then leaves them undefined when neither is given.
  const update = addDumpOptions(
    target
      .command('update')
      .description('Change any setting of a target. A new database URL or store is checked first, as by `target add`.')
      .argument('<name>', 'target name')
      .option('--database-url <url>', 'a new postgres://USER:PASSWORD@HOST:PORT/DATABASE (e.g. a rotated password)')
      .option('--server-url <url>', "a server target's new postgres://USER:PASSWORD@HOST:PORT/")
      .option('--store <url>', 'a new store (new backups go there; the old ones stay where they are)'),
    ' (replaces what the target has)',
  )
    .option('--no-encryption', 'stop encrypting new backups')
    .option('--no-with-storage', 'stop copying Storage objects')
    .option('--max-attempts <n>', 'attempts per run when a runner dies (1 = no retry)')
    .option('--checksums', 'record content checksums at dump time')
    .option('--no-checksums', 'stop recording content checksums')
    .option('--restore-to <host:port/database>', 'where operators may restore through the API (replaces the list); repeatable', collect, [])
    .option('--no-restore-to', 'operators may not restore its backups through the API')
    .option('--exclusive', 'at most one of its runs executes at a time')
    .option('--no-exclusive', 'let several of its runs execute at once')
    .option('--github <owner/repo>', 'run its backups on GitHub Actions in this repository')
    .option('--no-github', 'run its backups on workers again')
    .option('--github-workflow <file>', 'workflow file name')
    .option('--github-ref <ref>', 'branch or tag the workflow runs on');
  addPolicyOptions(addServerOptions(addContinuousOptions(update)))
    .option('--no-continuous', 'stop continuous backup: the slot and publication are dropped on the source (the stored window stays restorable)')
    .option('--no-schedule', 'remove the schedule')
    .option('--no-retention', 'remove the retention policy (keep every backup)')
    .option('--no-verify', 'remove the drill schedule (--verify-every, --verify-cron)')
    .option('--clear-notifications', 'remove every notification channel (before adding the ones given)')
    .option('--no-max-backup-age', 'drop the explicit bound: derive it from the schedule again')
    .option('--no-ping-url', 'stop pinging a heartbeat URL')
    .option('--skip-checks', 'store a new database URL or store without reaching it')
    .option('--json', 'print the target as JSON')
    .action((name: string, flags: UpdateFlags) =>
      sayingFlags({ name: 'NAME' }, async () => {
        const targetDeps = await deps();
        const current = await showTarget(targetDeps, name);
        const { input, generatedSecrets } = updateInput(flags, current);
        const updated = await updateTarget(targetDeps, name, input, context().actor);
        print(updated, flags.json, `Target ${updated.name} updated.`, generatedSecrets);
      }),
    );

  target
    .command('rename')
    .description('Give a target another name; its runs follow it. New backups go under the new name in the store; stored ones stay restorable where they are.')
    .argument('<name>', 'target name')
    .argument('<new-name>', 'its new name')
    .option('--json', 'print the target as JSON')
    .action((name: string, newName: string, flags: { json?: boolean }) =>
      sayingFlags({ name: 'NEW_NAME' }, async () => print(await renameTarget(await deps(), name, newName, context().actor), flags.json, `Target ${name} is now ${newName}.`)),
    );

  target
    .command('pause')
    .description('Stop queueing its scheduled backups and drills (manual ones still run). `target resume` starts again from the next slot.')
    .argument('<name>', 'target name')
    .option('--json', 'print the target as JSON')
    .action((name: string, flags: { json?: boolean }) =>
      sayingFlags({}, async () =>
        print(await pauseTarget(await deps(), name, context().actor), flags.json, `Target ${name} paused: no scheduled backups or drills until \`backstop target resume ${name}\`.`),
      ),
    );

  target
    .command('resume')
    .description('Queue its scheduled backups and drills again, from the next slot on: slots that passed while it was paused are not caught up.')
    .argument('<name>', 'target name')
    .option('--json', 'print the target as JSON')
    .action((name: string, flags: { json?: boolean }) =>
      sayingFlags({}, async () => print(await resumeTarget(await deps(), name, context().actor), flags.json, `Target ${name} resumed.`)),
    );

  target
    .command('test')
    .description("Check a target now: its store URL, its database and server version, a fitting pg_dump, a write to its store. Exits with the first failure's code.")
    .argument('<name>', 'target name')
    .option('--json', 'print the result as JSON')
    .action((name: string, flags: { json?: boolean }) =>
      sayingFlags({}, async () => {
        const result = await testTarget(await deps(), name);
        if (flags.json) printJson(result);
        else {
          process.stdout.write(
            `${table(
              ['CHECK', 'RESULT', 'DETAIL'],
              result.checks.map((check) => [check.name, check.ok ? 'ok' : check.error ? 'FAILED' : '-', check.detail]),
            )}\n`,
          );
          process.stdout.write(result.ok ? `Target ${name} passed every check.\n` : `Target ${name} failed a check.\n`);
        }
        const failed = result.checks.find((check) => check.error);
        if (failed?.error) process.exitCode = errorCodes[failed.error.code].exitCode;
      }),
    );

  target
    .command('delete')
    .description('Delete a target and its run history. Its backups stay in the store and are listed; `backstop import STORE_URL` brings the target and them back.')
    .argument('<name>', 'target name')
    .option('--json', 'print the result as JSON')
    .action((name: string, flags: { json?: boolean }) =>
      sayingFlags({}, async () => {
        const deleted = await deleteTarget(await deps(), name, context().actor);
        if (flags.json) {
          printJson(deleted);
          return;
        }
        process.stdout.write(`Target ${name} deleted.\n`);
        for (const warning of deleted.warnings ?? []) process.stderr.write(`Warning: ${warning}\n`);
        if (deleted.keptBackups.length === 0) return;
        process.stdout.write(
          `Its ${deleted.keptBackups.length} backup(s) stay in the store (\`backstop import ${deleted.storeUrl}\` brings the target and them back; \`backstop restore MANIFEST_URL\` restores one without the catalog):\n`,
        );
        process.stdout.write(
          `${table(
            ['RUN', 'FINISHED', 'SIZE', 'WHERE'],
            deleted.keptBackups.map((backup) => [backup.runId, backup.finishedAt, formatBytes(backup.sizeBytes), `${backup.storeUrl.replace(/\/+$/, '')}/${backup.prefix}`]),
          )}\n`,
        );
      }),
    );

  target
    .command('list')
    .description('List targets (database URLs are secrets and never shown).')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const targets = await listTargets(await deps());
      if (flags.json) printJson(targets.map(targetJson));
      else if (targets.length === 0) process.stdout.write('No targets yet. Add one with `backstop target add NAME --database-url URL`.\n');
      else {
        process.stdout.write(
          `${table(
            ['NAME', 'DATABASE', 'STORE', 'SCHEDULE', 'CREATED'],
            targets.map((t) => [
              t.name,
              t.database ? `${t.database.host}${t.database.port !== null ? `:${t.database.port}` : ''}/${t.database.database}` : '-',
              t.storeUrl,
              t.schedule ? `${t.schedule.cron}${t.paused ? ' (paused)' : ''}` : t.paused ? 'paused' : '-',
              t.createdAt,
            ]),
          )}\n`,
        );
      }
    });

  target
    .command('show')
    .description('Show one target (its database URL is a secret and never shown: its host, port, database and user are).')
    .argument('<name>', 'target name')
    .option('--json', 'print JSON')
    .action((name: string, flags: { json?: boolean }) =>
      sayingFlags({}, async () => {
        const shown = await showTarget(await deps(), name);
        if (flags.json) printJson({ ...targetJson(shown), alarms: shown.alarms, continuity: shown.continuity ?? null });
        else process.stdout.write(`${describeTarget(shown)}${describeContinuity(shown.continuity)}${describePolicies(shown, [], Date.now())}${describeAlarms(shown.alarms)}`);
      }),
    );
}
