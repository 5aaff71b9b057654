import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { describeProblems } from '../../core/inputProblems.ts';
import type { TargetCreateInput } from '../../operations/targets/targetInput.ts';
import { absoluteStoreUrl } from '../../storage/openStore.ts';

/**
 * Flags of the target commands (`target add|update`, `backup`), turned into the input object
 * the target operations take — the same object the API receives as JSON — and the
 * operations' field names turned back into flags in their errors. No rule about targets is
 * written here: the operations hold them all, so the CLI and the API accept and refuse alike.
 */

/** Store URLs are kept absolute so that a target means the same thing from any folder. */
export function storeUrlFor(store: string): string {
  return absoluteStoreUrl(store);
}

/** commander collector for repeatable options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * A whole number given as a flag's text; anything else becomes NaN, which the operation's
 * schema refuses with its own words ("must be a whole number from 1 to 10").
 */
export function flagNumber(text: string): number {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
}

/** Options shared by `target add`, `target update` and `backup`: how the target is dumped. */
export interface DumpFlags {
  compression?: string;
  encryptTo: string[];
  profile?: string;
  withStorage?: boolean;
}

/** --compression, --encrypt-to, --profile, --with-storage; `what` ends each help text. */
export function addDumpOptions(command: Command, what: string): Command {
  return command
    .option('--compression <algorithm>', `zstd, zstd:LEVEL, gzip, gzip:LEVEL or none${what}`)
    .option('--encrypt-to <recipient>', `age recipient (age1…) to encrypt to; repeatable${what}`, collect, [])
    .option('--profile <profile>', `default (one pg_dump archive) or supabase (roles, schema and data files, as \`supabase db dump\` splits them)${what}`)
    .option('--with-storage', `with --profile supabase: also copy the Storage objects through the S3 endpoint (SUPABASE_STORAGE_S3_* where the backup runs)${what}`);
}

/** The options object for the flags given (absent flags are absent, so an existing target's values stay). */
export function optionsFromFlags(flags: DumpFlags): NonNullable<TargetCreateInput['options']> {
  return {
    ...(flags.compression !== undefined ? { compression: flags.compression } : {}),
    ...(flags.encryptTo.length > 0 ? { encryptTo: flags.encryptTo } : {}),
    ...(flags.profile !== undefined ? { profile: flags.profile as 'default' } : {}),
    ...(flags.withStorage ? { withStorage: true } : {}),
  };
}

/** One flag, one meaning per profile: what runs at once. */
export const JOBS_HELP = 'what is dumped at once (default 1): for a server target, databases; otherwise pg_dump streams of the one database, each of its own tables, from one snapshot';

/**
 * `--jobs` of a target that is not a server target: its pg_dump streams (`options.jobs`). A
 * server target's `--jobs` is its databases at once, in `options.server` (serverOptionsFromFlags).
 */
export function streamJobsFromFlags(flags: { jobs?: string }, serverTarget: boolean): { jobs?: number } {
  return !serverTarget && flags.jobs !== undefined ? { jobs: flagNumber(flags.jobs) } : {};
}

/** Flags of a server target (`--server-url`): which databases and globals, how many at once. */
export interface ServerFlags {
  databases?: string;
  allDatabases?: boolean;
  excludeDatabases?: string;
  globals?: string;
  jobs?: string;
}

export function addServerOptions(command: Command): Command {
  return command
    .option('--databases <names>', 'server targets: only these databases, comma-separated (default: every database at each run)')
    .option('--all-databases', 'server targets: every database on the server at the time of each run (the default)')
    .option('--exclude-databases <names>', 'server targets: leave these databases out, comma-separated')
    .option('--globals <what>', 'server targets: roles+passwords (default), roles (never passwords) or none')
    .option('--jobs <n>', JOBS_HELP);
}

function names(list: string): string[] {
  return list
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
}

/**
 * The server options the flags give, over `current` (an update changes only what its flags
 * name); null when no server flag was given. Which of them a target may have is the
 * operation's rule (`options.server` needs the server profile).
 */
export function serverOptionsFromFlags(flags: ServerFlags, current: Record<string, unknown> = {}): Record<string, unknown> | null {
  if (flags.databases !== undefined && flags.allDatabases) {
    throw new BackstopError('INVALID_INPUT', '--databases and --all-databases choose differently: give one of them.', { field: 'options.server.databases' });
  }
  if ([flags.databases, flags.allDatabases, flags.excludeDatabases, flags.globals, flags.jobs].every((flag) => flag === undefined)) return null;
  const { databases, ...server } = current;
  return {
    ...server,
    ...(flags.allDatabases ? {} : flags.databases !== undefined ? { databases: names(flags.databases) } : databases !== undefined ? { databases } : {}),
    ...(flags.excludeDatabases !== undefined ? { excludeDatabases: names(flags.excludeDatabases) } : {}),
    ...(flags.globals !== undefined ? { globals: flags.globals } : {}),
    ...(flags.jobs !== undefined ? { jobs: flagNumber(flags.jobs) } : {}),
  };
}

/** Flags of continuous backup (`target add|update`). */
export interface ContinuousFlags {
  /** `--continuous` true, `--no-continuous` false (update only). */
  continuous?: boolean;
  tables?: string;
  allTables?: boolean;
  segmentSeconds?: string;
  segmentBytes?: string;
  slotWarnBytes?: string;
  slotLimitBytes?: string;
  maxRpo?: string;
}

export function addContinuousOptions(command: Command): Command {
  return command
    .option('--continuous', 'back it up continuously through logical decoding: a publication, a replication slot and base backups (see docs/CONTINUOUS.md)')
    .option('--tables <names>', 'continuous: only these tables, schema.table comma-separated (default: every table it can follow safely)')
    .option('--all-tables', 'continuous: every table it can follow safely (the default)')
    .option('--segment-seconds <n>', 'continuous: close a change segment after this many seconds (default 10)')
    .option('--segment-bytes <n>', 'continuous: or after this many bytes of changes (default 16777216)')
    .option('--slot-warn-bytes <n>', 'continuous: alarm when the slot holds back more WAL than this on the source (default 1 GiB)')
    .option('--slot-limit-bytes <n>', "continuous: over this much held-back WAL the slot is dropped, the source's disk first (default 8 GiB)")
    .option('--max-rpo <seconds>', 'continuous: alarm when the recovery point (the newest instant before which every commit is stored) is older than this (default 300)');
}

/**
 * The `continuous` input the flags give: an object (on, or its settings changed), null
 * (`--no-continuous`), or undefined (no continuous flag). Settings flags alone change the
 * settings of a target that is continuous already (`isContinuous`).
 */
export function continuousFromFlags(flags: ContinuousFlags, isContinuous = false): TargetCreateInput['continuous'] {
  const settings = {
    ...(flags.tables !== undefined ? { tables: names(flags.tables) } : {}),
    ...(flags.allTables ? { tables: null } : {}),
    ...(flags.segmentSeconds !== undefined ? { segmentSeconds: flagNumber(flags.segmentSeconds) } : {}),
    ...(flags.segmentBytes !== undefined ? { segmentBytes: flagNumber(flags.segmentBytes) } : {}),
    ...(flags.slotWarnBytes !== undefined ? { slotWarnBytes: flagNumber(flags.slotWarnBytes) } : {}),
    ...(flags.slotLimitBytes !== undefined ? { slotLimitBytes: flagNumber(flags.slotLimitBytes) } : {}),
    ...(flags.maxRpo !== undefined ? { maxRpoSeconds: flagNumber(flags.maxRpo) } : {}),
  };
  const given = Object.keys(settings).length > 0;
  if (flags.tables !== undefined && flags.allTables) {
    throw new BackstopError('INVALID_INPUT', '--tables and --all-tables choose differently: give one of them.', { field: 'continuous.tables' });
  }
  if (flags.continuous === false) {
    if (given) throw new BackstopError('INVALID_INPUT', '--no-continuous turns continuity off: its settings flags do not apply.', { field: 'continuous' });
    return null;
  }
  if (flags.continuous || (given && isContinuous)) return settings;
  if (given) throw new BackstopError('INVALID_INPUT', 'applies to a continuous target: add --continuous.', { field: 'continuous' });
  return undefined;
}

/** `--github OWNER/REPO` as the executor's owner and repo (the operation checks each). */
export function githubExecutor(repository: string, workflow: string | undefined, ref: string | undefined): NonNullable<TargetCreateInput['executor']> {
  const slash = repository.indexOf('/');
  return {
    kind: 'github',
    owner: slash === -1 ? repository : repository.slice(0, slash),
    repo: slash === -1 ? '' : repository.slice(slash + 1),
    ...(workflow !== undefined ? { workflow } : { workflow: 'backstop-backup.yml' }),
    ...(ref !== undefined ? { ref } : {}),
  };
}

const flagNames: Array<[RegExp, string]> = [
  [/^databaseUrl$/, '--database-url'],
  [/^serverUrl$/, '--server-url'],
  [/^options\.server\.databases(\.\d+)?$/, '--databases'],
  [/^options\.server\.excludeDatabases(\.\d+)?$/, '--exclude-databases'],
  [/^options\.server\.globals$/, '--globals'],
  [/^options\.server\.jobs$/, '--jobs'],
  [/^options\.jobs$/, '--jobs'],
  [/^options\.server$/, '--databases/--globals'],
  [/^storeUrl$/, '--store'],
  [/^options\.compression$/, '--compression'],
  [/^options\.encryptTo(\.\d+)?$/, '--encrypt-to'],
  [/^options\.profile$/, '--profile'],
  [/^options\.checksums$/, '--checksums'],
  [/^options\.withStorage$/, '--with-storage'],
  [/^options\.restoreTo(\.\d+)?$/, '--restore-to'],
  [/^exclusive$/, '--exclusive'],
  [/^maxAttempts$/, '--max-attempts'],
  [/^schedule(\.cron)?$/, '--schedule'],
  [/^(schedule|verification)\.timezone$/, '--timezone'],
  [/^retention\.keepLast$/, '--keep-last'],
  [/^retention\.daily$/, '--keep-daily'],
  [/^retention\.weekly$/, '--keep-weekly'],
  [/^retention\.monthly$/, '--keep-monthly'],
  [/^retention$/, '--keep-*'],
  [/^verification\.everyNth$/, '--verify-every'],
  [/^verification(\.cron)?$/, '--verify-cron'],
  [/^notifications\.\d+\.on(\.\d+)?$/, '--notify-on'],
  [/^notifications\.\d+\.secret$/, '--webhook-secret'],
  [/^notifications\.\d+\.channel$/, '--notify-channel'],
  [/^notifications(\.\d+(\.url)?)?$/, '--notify-webhook/--notify-slack/--notify-discord/--notify-teams/--notify-ntfy'],
  [/^executor\.(owner|repo)$/, '--github'],
  [/^executor\.workflow$/, '--github-workflow'],
  [/^executor\.ref$/, '--github-ref'],
  [/^executor$/, '--github'],
  [/^paused$/, 'pause/resume'],
  [/^maxBackupAge$/, '--max-backup-age'],
  [/^pingUrl$/, '--ping-url'],
  [/^continuous\.tables(\.\d+)?$/, '--tables'],
  [/^continuous\.segmentSeconds$/, '--segment-seconds'],
  [/^continuous\.segmentBytes$/, '--segment-bytes'],
  [/^continuous\.slotWarnBytes$/, '--slot-warn-bytes'],
  [/^continuous\.slotLimitBytes$/, '--slot-limit-bytes'],
  [/^continuous\.maxRpoSeconds$/, '--max-rpo'],
  [/^continuous$/, '--continuous'],
  // The target a command acts on (its NAME argument), as opposed to `name`, the one it is given.
  [/^target$/, 'NAME'],
];

/** The flag (or argument) that gave an input field; `overrides` for a command's own names (NAME, --target…). */
export function flagFor(field: string, overrides: Record<string, string> = {}): string {
  if (field in overrides) return overrides[field]!;
  for (const [pattern, flag] of flagNames) if (pattern.test(field)) return flag;
  return field;
}

/**
 * An operation's error as the CLI says it: each problem after the flag that gave its field
 * ("--encrypt-to: must be an age recipient (age1…)"), the code and exit code unchanged.
 */
export function withFlagNames(error: unknown, overrides: Record<string, string> = {}): unknown {
  if (!(error instanceof BackstopError) || error.field === undefined) return error;
  const name = (field: string) => flagFor(field, overrides);
  // Several problems, one per line: a terminal is read line by line.
  const message =
    error.fields && error.fields.length > 1
      ? `${error.fields.length} problems:\n${error.fields.map((problem) => `  ${describeProblems([problem], name)}`).join('\n')}`
      : error.fields
        ? describeProblems(error.fields, name)
        : `${name(error.field)}: ${error.message}`;
  return new BackstopError(error.code, message, { cause: error, field: error.field, ...(error.fields ? { fields: error.fields } : {}) });
}

/** Runs a command's action, its errors said with flag names. */
export async function sayingFlags<T>(overrides: Record<string, string>, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw withFlagNames(error, overrides);
  }
}
