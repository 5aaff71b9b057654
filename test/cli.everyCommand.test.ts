import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Command, Option } from 'commander';
import { errorCodes, type ErrorCode } from '../src/core/errors.ts';
import { createProgram, everyCommand, runnable } from '../src/cli/main.ts';
import { insertFailedRun } from './support/runRows.ts';
import { repoRoot } from './support/cli.ts';
import { adminQuery, createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { stopEmbeddedServers } from '../src/operations/stopEmbeddedServers.ts';

/**
 * Every command of the CLI, read from the commander program itself (a command added later is
 * probed the day it is added), run as a real process with inputs that make it fail:
 *
 * - with `--json`, stdout is one JSON document with `error.code`, and the exit code is that
 *   code's, one of those the README documents; a command with no result refuses `--json`
 *   with the reason;
 * - without it, stderr is a line or two that says what to do;
 * - nothing anywhere is a stack trace, at the default log level;
 * - `--help` of every command exits 0;
 * - a listing whose reader goes away ends quietly.
 *
 * The tables below say, per command, what makes it fail and what it must answer; a command
 * or an option missing from them fails the first tests, which say what to add.
 */

const UNKNOWN_RUN = '3f1c2b4a-0d5e-4f6a-8b7c-9d0e1f2a3b4c';
const UNREACHABLE_CATALOG = { BACKSTOP_DATABASE_URL: 'postgres://backstop:pw@127.0.0.1:1/backstop' };
const TEST_TIMEOUT = { timeout: 120_000 };
/** How long a probe may run: one that is still running has ignored its bad input and started. */
const PROBE_DEADLINE_MS = 40_000;
const PARALLEL = { concurrency: 4 };

// A stack frame as printed ("\n    at f (file:1:2)") or inside a JSON log line ("\\n    at ").
const STACK_FRAME = /(^|\n|\\n)\s+at \S/;
const NODE_INTERNAL = /node:internal/;
// Words of a message that says what to do next.
const ADVICE = /`backstop [^`]*`|--[a-z]|BACKSTOP_[A-Z]|\b(use|pass|list|set|unset|choose|check|run|restore|drop|add|import|create|start|stop|give|free|point|write|pick|must be)\b/i;

type Env = Record<string, string>;

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Still running at the deadline, so killed. */
  hung: boolean;
}

/** A real `backstop ARGS` at the default log level (BACKSTOP_LOG_LEVEL unset). */
function backstop(args: string[], env: Env, options: { closeStdout?: 'at once' | 'after one byte' } = {}): Promise<Outcome> {
  const environment: Env = { ...(process.env as Env), ...env };
  delete environment.BACKSTOP_LOG_LEVEL;
  delete environment.BACKSTOP_LOG_FORMAT;
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'backstop.js'), ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: environment,
  });
  let stdout = '';
  let stderr = '';
  let hung = false;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  if (options.closeStdout === 'at once') child.stdout.destroy();
  else {
    child.stdout.on('data', (chunk: Buffer) => {
      if (options.closeStdout === 'after one byte') {
        stdout += chunk.toString().slice(0, 1);
        child.stdout.destroy();
      } else stdout += chunk.toString();
    });
  }
  const deadline = setTimeout(() => {
    hung = true;
    child.kill('SIGKILL');
  }, PROBE_DEADLINE_MS);
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      resolve({ code, signal, stdout, stderr, hung });
    }),
  );
}

function describeOutcome(args: string[], outcome: Outcome): string {
  return `backstop ${args.join(' ')} → exit ${outcome.code}${outcome.hung ? ' (still running: killed)' : ''}\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`;
}

function assertNoStackTrace(args: string[], outcome: Outcome): void {
  for (const output of [outcome.stdout, outcome.stderr]) {
    assert.doesNotMatch(output, STACK_FRAME, `a stack trace:\n${describeOutcome(args, outcome)}`);
    assert.doesNotMatch(output, NODE_INTERNAL, `node internals:\n${describeOutcome(args, outcome)}`);
  }
}

/** The exit codes the README documents (section "Using it": "2 bad input, 4 unknown run or target, …"). */
async function documentedExitCodes(): Promise<Set<number>> {
  const readme = await fs.readFile(path.join(repoRoot, 'README.md'), 'utf8');
  const sentence = /Exit code 0 means[^(]*\(([^)]*)\)/.exec(readme);
  assert.ok(sentence, 'README: the sentence "Exit code 0 means … (2 bad input, …)" is gone');
  return new Set([...sentence[1]!.matchAll(/(\d+) [A-Za-z]/g)].map((match) => Number(match[1])));
}

interface Failure {
  /** Words of the command line after the command's own path (a function: they name fixtures made later). */
  args: () => string[];
  code: ErrorCode;
  env?: Env;
  /** What the message must say besides (the run id, the option…). */
  says?: RegExp;
}

interface Expectation {
  /** Inputs that make the command fail, beyond the usage errors every command gets. */
  failing: Failure[];
  /**
   * An invocation that gets past the command's input checks and then fails late, or succeeds
   * harmlessly: an invalid option value added to it must turn it into exit 2, said at once.
   */
  base?: { args: () => string[]; env?: Env };
  /** An invocation that succeeds printing a listing: a reader that goes away must not make it noisy. */
  lists?: Array<() => string[]>;
}

describe('every command keeps the CLI promises', () => {
  const program = createProgram(() => {
    throw new Error('the test only reads the program');
  });
  const commands = everyCommand(program);
  const runnables = commands.filter(([command]) => runnable(command));
  const takesJson = (command: Command) => command.options.some((option) => option.long === '--json' && !option.hidden);

  let catalog: TestCatalog;
  let source: TestDatabase;
  let empty: TestDatabase;
  let home: string;
  let env: Env;
  let succeeded: string;
  let failed: string;
  let documented: Set<number>;

  const paths = {
    home: () => home,
    file: (name: string) => path.join(home, name),
  };

  /** Per command path: what makes it fail. */
  const expectations: Record<string, Expectation> = {
    backup: {
      failing: [
        { args: () => ['notaurl'], code: 'INVALID_INPUT' },
        { args: () => [source.url, '--target', 'Bad Name!'], code: 'INVALID_INPUT', says: /Bad Name!|--target/ },
      ],
      base: { args: () => ['postgres://nobody@127.0.0.1:1/nowhere'] },
    },
    run: {
      failing: [
        { args: () => [UNKNOWN_RUN], code: 'RUN_NOT_FOUND', says: new RegExp(UNKNOWN_RUN) },
        { args: () => ['not-a-run'], code: 'RUN_NOT_FOUND', says: /not-a-run/ },
        { args: () => [succeeded], code: 'RUN_ALREADY_TERMINAL', says: /already finished/ },
      ],
      base: { args: () => [UNKNOWN_RUN] },
    },
    'target add': {
      failing: [
        { args: () => ['Bad Name!', '--database-url', source.url], code: 'INVALID_INPUT', says: /Bad Name!|NAME/ },
        { args: () => ['probe', '--database-url', source.url], code: 'TARGET_EXISTS', says: /probe/ },
      ],
      base: { args: () => ['probe', '--database-url', source.url] },
    },
    'target update': {
      failing: [
        { args: () => ['no-such-target', '--keep-last', '3'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ },
        { args: () => ['probe'], code: 'INVALID_INPUT', says: /Nothing to change/ },
      ],
      base: { args: () => ['probe', '--keep-last', '5'] },
    },
    'target rename': {
      failing: [
        { args: () => ['no-such-target', 'other'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ },
        { args: () => ['probe', 'Bad Name!'], code: 'INVALID_INPUT', says: /Bad Name!|NEW_NAME/ },
      ],
    },
    'target pause': { failing: [{ args: () => ['no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ }] },
    'target resume': { failing: [{ args: () => ['no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ }] },
    'target test': { failing: [{ args: () => ['no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ }] },
    'target delete': { failing: [{ args: () => ['no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ }] },
    'target show': {
      failing: [
        { args: () => ['no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ },
        { args: () => ['Not A Name'], code: 'INVALID_INPUT', says: /Not A Name/ },
      ],
      lists: [() => ['probe'], () => ['probe', '--json']],
    },
    'target list': { failing: [{ args: () => [], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG }], lists: [() => [], () => ['--json']] },
    'channel add': {
      failing: [
        { args: () => ['Bad Name!', '--kind', 'ntfy', '--url', 'https://ntfy.example.com/x'], code: 'INVALID_INPUT', says: /NAME/ },
        { args: () => ['half', '--kind', 'telegram', '--chat-id', '1'], code: 'INVALID_INPUT', says: /--bot-token: is required/ },
      ],
      base: { args: () => ['probe-channel', '--kind', 'ntfy', '--url', 'https://ntfy.example.com/probe'] },
    },
    'channel update': {
      failing: [
        { args: () => ['no-such-channel', '--url', 'https://ntfy.example.com/x'], code: 'CHANNEL_NOT_FOUND', says: /no-such-channel/ },
        { args: () => ['no-such-channel'], code: 'INVALID_INPUT', says: /changes nothing/ },
      ],
      base: { args: () => ['probe-channel', '--url', 'https://ntfy.example.com/other'] },
    },
    'channel list': { failing: [{ args: () => [], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG }], lists: [() => [], () => ['--json']] },
    'channel show': { failing: [{ args: () => ['no-such-channel'], code: 'CHANNEL_NOT_FOUND', says: /no-such-channel/ }] },
    'channel remove': { failing: [{ args: () => ['no-such-channel'], code: 'CHANNEL_NOT_FOUND', says: /no-such-channel/ }] },
    'channel test': {
      failing: [
        { args: () => ['no-such-channel'], code: 'CHANNEL_NOT_FOUND', says: /no-such-channel/ },
        { args: () => ['some-id', '--target', 'no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ },
      ],
      base: { args: () => ['some-id'] },
    },
    trigger: { failing: [{ args: () => ['no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ }] },
    window: {
      failing: [
        { args: () => ['no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ },
        { args: () => ['Bad Name!'], code: 'INVALID_INPUT', says: /Bad Name!|TARGET/ },
      ],
      lists: [() => ['probe'], () => ['probe', '--json']],
    },
    runs: {
      failing: [{ args: () => ['--target', 'no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ }],
      base: { args: () => [] },
      lists: [() => [], () => ['--json'], () => ['--target', 'probe']],
    },
    'runs show': {
      failing: [
        { args: () => [UNKNOWN_RUN], code: 'RUN_NOT_FOUND', says: new RegExp(UNKNOWN_RUN) },
        { args: () => ['ffffffff'], code: 'RUN_NOT_FOUND', says: /ffffffff/ },
      ],
      lists: [() => [succeeded], () => [succeeded, '--json']],
    },
    cancel: {
      failing: [
        { args: () => [UNKNOWN_RUN], code: 'RUN_NOT_FOUND' },
        { args: () => [succeeded], code: 'RUN_ALREADY_TERMINAL', says: /succeeded/ },
      ],
    },
    worker: { failing: [{ args: () => [], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG }], base: { args: () => [], env: UNREACHABLE_CATALOG } },
    stream: {
      failing: [
        { args: () => ['no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ },
        { args: () => ['probe'], code: 'INVALID_INPUT', says: /probe is not continuous/ },
      ],
      base: { args: () => ['probe'] },
    },
    restore: {
      failing: [
        { args: () => [UNKNOWN_RUN, '--to', empty.url], code: 'RUN_NOT_FOUND' },
        { args: () => [failed, '--to', empty.url], code: 'INVALID_INPUT', says: /only a succeeded backup/ },
        { args: () => [succeeded, '--to', source.url], code: 'RESTORE_TARGET_NOT_EMPTY' },
        { args: () => [paths.file('nowhere/manifest.json'), '--to', empty.url], code: 'STORE_READ_FAILED' },
        // Not a continuous target: no base backup, nothing restorable to a point.
        { args: () => ['probe', '--at', 'latest', '--to', empty.url], code: 'POINT_NOT_RESTORABLE', says: /no succeeded base backup/ },
        { args: () => ['no-such-target', '--at', 'latest', '--to', empty.url], code: 'TARGET_NOT_FOUND' },
      ],
      // The source database is not empty: the restore is refused after the artifact was read.
      base: { args: () => [succeeded, '--to', source.url] },
    },
    verify: {
      failing: [
        { args: () => [UNKNOWN_RUN], code: 'RUN_NOT_FOUND' },
        { args: () => [failed], code: 'INVALID_INPUT', says: /only a succeeded backup/ },
      ],
      base: { args: () => [UNKNOWN_RUN] },
    },
    import: {
      failing: [
        { args: () => ['s3://'], code: 'INVALID_INPUT' },
        { args: () => [paths.file('no-such-folder')], code: 'STORE_READ_FAILED', says: /no-such-folder/ },
      ],
    },
    demo: { failing: [{ args: () => [], code: 'INVALID_INPUT', says: /BACKSTOP_DATABASE_URL/ }] },
    'catalog migrate': { failing: [{ args: () => [], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG }] },
    'catalog stop': { failing: [{ args: () => [], code: 'INVALID_INPUT', says: /BACKSTOP_DATABASE_URL/ }] },
    server: {
      failing: [{ args: () => ['--port', '0'], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG }],
      base: { args: () => ['--port', '0'], env: UNREACHABLE_CATALOG },
    },
    'token create': {
      failing: [
        { args: () => ['--name', 'x'], code: 'INVALID_INPUT', says: /--role/ },
        { args: () => ['--name', 'x', '--role', 'viewer', '--github', 'acme/infra'], code: 'INVALID_INPUT' },
      ],
      base: { args: () => ['--name', 'probe'], env: UNREACHABLE_CATALOG },
    },
    'token list': { failing: [{ args: () => [], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG }], lists: [() => [], () => ['--json']] },
    'token revoke': { failing: [{ args: () => [UNKNOWN_RUN], code: 'TOKEN_NOT_FOUND' }] },
    prune: {
      failing: [{ args: () => ['--target', 'no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ }],
      base: { args: () => ['--dry-run'] },
      lists: [() => ['--dry-run'], () => ['--dry-run', '--json']],
    },
    alarms: {
      failing: [
        { args: () => ['--target', 'no-such-target'], code: 'TARGET_NOT_FOUND', says: /no-such-target/ },
        { args: () => [], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG },
      ],
      base: { args: () => [] },
      lists: [() => [], () => ['--json']],
    },
    audit: {
      failing: [
        { args: () => ['--since', 'yesterday'], code: 'INVALID_INPUT', says: /--since/ },
        { args: () => ['--action', 'target.rename'], code: 'INVALID_INPUT', says: /--action/ },
        { args: () => [], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG },
      ],
      base: { args: () => [] },
      lists: [() => [], () => ['--json'], () => ['--since', '7d', '--action', 'target']],
    },
    schedules: {
      failing: [{ args: () => [], code: 'CATALOG_UNAVAILABLE', env: UNREACHABLE_CATALOG }],
      base: { args: () => [] },
      lists: [() => [], () => ['--json']],
    },
    keygen: {
      base: { args: () => [] },
      failing: [
        { args: () => ['-o', paths.file('existing-key.txt')], code: 'INVALID_INPUT', says: /already exists/ },
        { args: () => ['-o', '/etc/passwd/key.txt'], code: 'INVALID_INPUT', says: /not a folder/ },
      ],
    },
    'init github': {
      failing: [
        { args: () => ['--dir', '/etc/passwd'], code: 'INVALID_INPUT', says: /not a folder/ },
        { args: () => ['--dir', paths.file('no-such-repository')], code: 'INVALID_INPUT', says: /not a folder/ },
      ],
      base: { args: () => ['--dir', paths.home()] },
    },
    report: {
      failing: [{ args: () => [UNKNOWN_RUN, '--job-status', 'success'], code: 'RUN_NOT_FOUND' }],
      base: { args: () => [UNKNOWN_RUN, '--job-status', 'success'] },
    },
  };

  /**
   * An invalid value for every option that takes one (by its flag; `command flag` for one
   * command's own meaning), with what else it needs to be read. null: any value is valid.
   */
  const invalidValues: Record<string, { args: string[]; says?: RegExp; code?: ErrorCode } | null> = {
    '--store': { args: ['--store', 's3://'] },
    'backup --target': { args: ['--target', 'Bad Name!'], says: /Bad Name!|--target/ },
    '--target': { args: ['--target', 'no-such-target'], says: /no-such-target/, code: 'TARGET_NOT_FOUND' },
    '--compression': { args: ['--compression', 'lzma'], says: /lzma|--compression/ },
    // Not echoed: a secret key pasted by mistake must not be printed.
    '--encrypt-to': { args: ['--encrypt-to', 'not-a-recipient'], says: /recipient/ },
    '--profile': { args: ['--profile', 'bogus'], says: /bogus/ },
    '--api-url': { args: ['--api-url', 'not-a-url'], says: /not-a-url/, code: 'CONFIG_INVALID' },
    '--token': { args: ['--token', 'bsr_x'], says: /--api-url/, code: 'CONFIG_INVALID' },
    '--database-url': { args: ['--database-url', 'not-a-url'], says: /not-a-url/ },
    '--server-url': { args: ['--server-url', 'not-a-url'], says: /not-a-url/ },
    // A target's list must name a database; a restore's, a server backup (this one is of one database).
    '--databases': { args: ['--databases', ','], says: /--databases/ },
    '--replace-databases': { args: ['--replace-databases', 'app'], says: /--replace-databases/ },
    '--exclude-databases': { args: ['--exclude-databases', 'x'.repeat(64)], says: /--exclude-databases/ },
    '--globals': { args: ['--globals', 'everything'], says: /--globals/ },
    '--restore-to': { args: ['--restore-to', 'nowhere'], says: /--restore-to/ },
    '--max-attempts': { args: ['--max-attempts', '0'], says: /--max-attempts/ },
    '--github': { args: ['--github', 'not a repository'], says: /--github/ },
    '--github-workflow': { args: ['--github', 'acme/infra', '--github-workflow', 'notes.txt'], says: /--github-workflow/ },
    '--github-ref': { args: ['--github', 'acme/infra', '--github-ref', ' '], says: /--github-ref/ },
    '--schedule': { args: ['--schedule', 'every day'], says: /every day/ },
    '--timezone': { args: ['--schedule', '0 3 * * *', '--timezone', 'Mars/Olympus_Mons'], says: /Mars/ },
    '--keep-last': { args: ['--keep-last', 'many'], says: /--keep-last/ },
    '--keep-daily': { args: ['--keep-daily', 'many'], says: /--keep-daily/ },
    '--keep-weekly': { args: ['--keep-weekly', 'many'], says: /--keep-weekly/ },
    '--keep-monthly': { args: ['--keep-monthly', 'many'], says: /--keep-monthly/ },
    // Channel URLs are secrets (a Slack webhook's is its key): never echoed.
    '--notify-webhook': { args: ['--notify-webhook', 'not-a-url'], says: /webhook/i },
    '--notify-slack': { args: ['--notify-slack', 'not-a-url'], says: /Slack/ },
    '--notify-on': { args: ['--notify-webhook', 'https://hooks.example.com/x', '--notify-on', 'sometimes'], says: /sometimes|--notify-on/ },
    '--notify-discord': { args: ['--notify-discord', 'not-a-url'], says: /--notify-discord/ },
    '--notify-teams': { args: ['--notify-teams', 'not-a-url'], says: /--notify-teams/ },
    '--notify-ntfy': { args: ['--notify-ntfy', 'not-a-url'], says: /--notify-ntfy/ },
    '--notify-channel': { args: ['--notify-channel', 'Not A Channel'], says: /--notify-channel/ },
    // Channel settings; the secret ones are never echoed.
    '--kind': { args: ['--kind', 'bogus'], says: /--kind/ },
    '--url': { args: ['--url', 'not-a-url'], says: /--url/ },
    '--secret': { args: ['--secret', 'short'], says: /--secret/ },
    'channel add --token': { args: ['--token', ''], says: /--token/ },
    'channel update --token': { args: ['--token', ''], says: /--token/ },
    '--bot-token': { args: ['--bot-token', 'nope'], says: /--bot-token/ },
    '--chat-id': { args: ['--chat-id', 'not a chat'], says: /--chat-id/ },
    'channel add --api-url': { args: ['--api-url', 'not-a-url'], says: /--api-url/ },
    'channel update --api-url': { args: ['--api-url', 'not-a-url'], says: /--api-url/ },
    '--smtp-host': { args: ['--smtp-host', 'not a host!'], says: /--smtp-host/ },
    '--smtp-port': { args: ['--smtp-port', 'eighty'], says: /--smtp-port/ },
    '--smtp-security': { args: ['--smtp-security', 'maybe'], says: /--smtp-security/ },
    '--smtp-user': { args: ['--smtp-user', ''], says: /--smtp-user/ },
    '--smtp-password': { args: ['--smtp-password', ''], says: /--smtp-password/ },
    '--from': { args: ['--from', 'not-an-address'], says: /--from/ },
    'channel add --to': { args: ['--to', 'not-an-address'], says: /--to/ },
    'channel update --to': { args: ['--to', 'not-an-address'], says: /--to/ },
    '--webhook-secret': { args: ['--webhook-secret', 'secret-without-a-webhook'], says: /--notify-webhook/ },
    '--verify-every': { args: ['--verify-every', '0'], says: /--verify-every/ },
    '--max-backup-age': { args: ['--max-backup-age', 'soon'], says: /--max-backup-age/ },
    // A ping URL is a secret: never echoed.
    '--ping-url': { args: ['--ping-url', 'not-a-url'], says: /--ping-url/ },
    '--tables': { args: ['--continuous', '--tables', 'nodot'], says: /--tables/ },
    '--segment-seconds': { args: ['--continuous', '--segment-seconds', '0'], says: /--segment-seconds/ },
    '--segment-bytes': { args: ['--continuous', '--segment-bytes', 'many'], says: /--segment-bytes/ },
    '--slot-warn-bytes': { args: ['--continuous', '--slot-warn-bytes', '1'], says: /--slot-warn-bytes/ },
    '--slot-limit-bytes': { args: ['--continuous', '--slot-limit-bytes', '-1'], says: /--slot-limit-bytes/ },
    '--max-rpo': { args: ['--continuous', '--max-rpo', '0'], says: /--max-rpo/ },
    '--alarm-repeat': { args: ['--alarm-repeat', '-1'], says: /--alarm-repeat/ },
    '--verify-cron': { args: ['--verify-cron', 'weekly-ish'], says: /weekly-ish/ },
    '--status': { args: ['--status', 'bogus'], says: /bogus/ },
    '--limit': { args: ['--limit', '0'], says: /--limit/ },
    '--concurrency': { args: ['--concurrency', '0'], says: /--concurrency/ },
    '--poll-interval': { args: ['--poll-interval', '0'], says: /--poll-interval/ },
    '--drain-timeout': { args: ['--drain-timeout', '-1'], says: /--drain-timeout/ },
    '--to': { args: ['--to', 'not-a-url'], says: /not-a-url/ },
    '--jobs': { args: ['--jobs', '0'], says: /--jobs/ },
    '--at': { args: ['--at', 'yesterday'], says: /yesterday/ },
    '--schema': { args: ['--schema', 'no_such_schema'], says: /no_such_schema/ },
    '--table': { args: ['--table', 'no_such_table'], says: /no_such_table/ },
    '--identity': { args: ['--identity', '/nonexistent/key.txt'], says: /key\.txt/ },
    '--host': { args: ['--host', 'not a host'], says: /not a host/ },
    '--port': { args: ['--port', 'eighty'], says: /--port/ },
    '--name': { args: ['--name', '!', '--role', 'viewer'], says: /"!"/ },
    '--role': { args: ['--role', 'overlord'], says: /overlord/ },
    '--owner': { args: ['--role', 'viewer', '--owner', ' '], says: /--owner/ },
    'token create --github': { args: ['--github', 'not a repository'], says: /not a repository/ },
    '--grace-period': { args: ['--grace-period', '-1'], says: /--grace-period/ },
    '--count': { args: ['--count', '0'], says: /--count/ },
    '--output': { args: ['--output', '/etc/passwd/key.txt'], says: /not a folder/ },
    '--dir': { args: ['--dir', '/etc/passwd'], says: /not a folder/ },
    '--action-ref': { args: ['--action-ref', 'not-a-reference'], says: /not-a-reference/ },
    '--job-status': { args: ['--job-status', 'maybe'], says: /maybe/ },
    '--since': { args: ['--since', 'yesterday'], says: /--since/ },
    '--action': { args: ['--action', 'target.rename'], says: /--action/ },
    // A name or an id of anyone: no value is invalid.
    '--actor': null,
  };
  const valueOptions = runnables.flatMap(([command, commandPath]) =>
    command.options.filter((option: Option) => option.required || option.optional).map((option) => ({ commandPath, option })),
  );
  const invalidValueFor = (commandPath: string, option: Option) => {
    const own = `${commandPath} ${option.long}`;
    return own in invalidValues ? invalidValues[own] : invalidValues[option.long!];
  };

  before(async () => {
    documented = await documentedExitCodes();
    catalog = await createTestCatalog();
    source = await createSampleDatabase(20);
    empty = await createTestDatabase('empty');
    home = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-every-command-'));
    await fs.writeFile(path.join(home, 'existing-key.txt'), 'keep me\n');
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_HOME: home, BACKSTOP_STORE: `file://${path.join(home, 'backups')}` };
    const backup = await backstop(['backup', source.url, '--target', 'probe', '--json'], env);
    assert.equal(backup.code, 0, describeOutcome(['backup'], backup));
    succeeded = (JSON.parse(backup.stdout) as { id: string }).id;
    failed = await insertFailedRun(catalog.pool, succeeded);
    await catalog.pool.query(`update backstop.targets set schedule = '{"cron": "0 3 * * *", "timezone": "UTC"}' where name = 'probe'`);
  });

  after(async () => {
    await catalog?.close();
    await source?.drop();
    await empty?.drop();
    // Drills started a scratch server in this home: stop it before removing the home.
    if (home) await stopEmbeddedServers({ home, databaseUrl: 'not embedded' });
    if (home) await fs.rm(home, { recursive: true, force: true });
  });

  describe('the tables cover the program', () => {
    it('every runnable command has inputs that make it fail', () => {
      const covered = Object.keys(expectations);
      assert.deepEqual(
        runnables.map(([, commandPath]) => commandPath).sort(),
        covered.sort(),
        'add the new command to `expectations` in this file: what makes it fail, and what it must answer',
      );
    });

    it('every option that takes a value has an invalid value here (or is marked as taking any)', () => {
      const missing = valueOptions
        .filter(({ commandPath, option }) => invalidValueFor(commandPath, option) === undefined)
        .map(({ commandPath, option }) => `${commandPath} ${option.flags}`);
      assert.deepEqual(missing, [], 'add an invalid value for these options to `invalidValues` in this file');
    });

    it('the commands with no result to print are exactly the worker, the server, the streamer and the demo', () => {
      assert.deepEqual(
        runnables
          .filter(([command]) => !takesJson(command))
          .map(([, commandPath]) => commandPath)
          .sort(),
        ['demo', 'server', 'stream', 'worker'],
      );
    });
  });

  describe('--help of every command exits 0 and prints its usage', PARALLEL, () => {
    for (const [, commandPath] of [[program, ''] as const, ...commands]) {
      it(`backstop ${commandPath} --help`.replace('  ', ' '), TEST_TIMEOUT, async () => {
        const args = [...commandPath.split(' ').filter(Boolean), '--help'];
        const outcome = await backstop(args, env);
        assert.equal(outcome.code, 0, describeOutcome(args, outcome));
        assert.match(outcome.stdout, new RegExp(`^Usage: backstop ${commandPath}`.replace(/ $/, '')), describeOutcome(args, outcome));
        assert.equal(outcome.stderr, '', describeOutcome(args, outcome));
      });
    }
  });

  /** Checks a failed invocation: exit code, the JSON document or the message, no stack trace. */
  function assertFails(args: string[], outcome: Outcome, expected: { code: ErrorCode; says?: RegExp; json: boolean }): void {
    const what = describeOutcome(args, outcome);
    assert.equal(outcome.hung, false, `it ignored the bad input and kept running:\n${what}`);
    assertNoStackTrace(args, outcome);
    const exit = errorCodes[expected.code].exitCode;
    assert.equal(outcome.code, exit, `exit code of ${expected.code}:\n${what}`);
    assert.ok(documented.has(exit), `exit code ${exit} is not among those the README documents`);
    let message: string;
    if (expected.json) {
      let document: { error?: { code?: string; message?: string } };
      try {
        document = JSON.parse(outcome.stdout);
      } catch (error) {
        assert.fail(`stdout is not one JSON document (${(error as Error).message}):\n${what}`);
      }
      assert.equal(document.error?.code, expected.code, what);
      message = document.error?.message ?? '';
      assert.doesNotMatch(message, /\[[A-Z_]+\]$/, 'the code is a field, not a suffix of the message');
    } else {
      const lines = outcome.stderr.trimEnd().split('\n');
      assert.ok(outcome.stderr.trim() !== '' && lines.length <= 3, `stderr must be a line or two:\n${what}`);
      message = outcome.stderr;
      for (const line of lines) assert.doesNotMatch(line, /^\{"level"/, `a log line on a failure:\n${what}`);
    }
    assert.match(message, ADVICE, `the message must say what to do:\n${what}`);
    if (expected.says) assert.match(message, expected.says, what);
  }

  describe("usage errors: exit 2, said in a line that points at the command's help", PARALLEL, () => {
    for (const [command, commandPath] of runnables) {
      const words = commandPath.split(' ');
      const json = takesJson(command);
      const required = command.registeredArguments.filter((argument) => argument.required);
      // Commander reports all three the same way: each is probed in one form, the unknown option in both.
      const probes: Array<{ title: string; args: string[]; json: boolean }> = [
        { title: 'an unknown option', args: [...words, '--no-such-option'], json: false },
        { title: 'an unknown option', args: [...words, '--no-such-option'], json: true },
      ];
      if (required.length > 0) probes.push({ title: 'a missing argument', args: words, json: true });
      if (!command.registeredArguments.some((argument) => argument.variadic)) {
        probes.push({ title: 'one argument too many', args: [...words, ...command.registeredArguments.map(() => UNKNOWN_RUN), 'extra'], json: false });
      }
      for (const probe of probes) {
        it(`backstop ${commandPath}: ${probe.title}${probe.json ? ', with --json' : ''}`, TEST_TIMEOUT, async () => {
          const args = [...probe.args, ...(probe.json ? ['--json'] : [])];
          const outcome = await backstop(args, env);
          assertFails(args, outcome, { code: 'INVALID_INPUT', json: probe.json });
          assert.match(probe.json ? outcome.stdout : outcome.stderr, new RegExp(`backstop ${commandPath} --help`), describeOutcome(args, outcome));
        });
      }
      if (!json) {
        it(`backstop ${commandPath} --json: refused, with the reason, as one document`, TEST_TIMEOUT, async () => {
          // Its arguments given (any will do: the refusal comes before the command runs), so that the refusal is what answers.
          const args = [...words, ...required.map(() => 'probe'), '--json'];
          const outcome = await backstop(args, env);
          assertFails(args, outcome, { code: 'INVALID_INPUT', json: true, says: /prints no result/ });
        });
      }
    }
  });

  describe('inputs that make each command fail: the code, a message that says what to do', PARALLEL, () => {
    for (const [command, commandPath] of runnables) {
      const json = takesJson(command);
      for (const failure of expectations[commandPath]?.failing ?? []) {
        for (const withJson of json ? [false, true] : [false]) {
          it(
            `backstop ${commandPath} ${failure.args.toString().replace(/^\(\) => /, '')}${failure.env ? ' (catalog unreachable)' : ''}${withJson ? ' --json' : ''}: ${failure.code}`,
            TEST_TIMEOUT,
            async () => {
              const args = [...commandPath.split(' '), ...failure.args(), ...(withJson ? ['--json'] : [])];
              const outcome = await backstop(args, { ...env, ...failure.env });
              assertFails(args, outcome, { code: failure.code, says: failure.says, json: withJson });
            },
          );
        }
      }
    }
  });

  describe('an invalid option value: exit 2 at once, naming the option or the value', PARALLEL, () => {
    for (const { commandPath, option } of valueOptions) {
      const invalid = invalidValueFor(commandPath, option);
      if (!invalid) continue;
      const command = runnables.find(([, candidate]) => candidate === commandPath)![0];
      // With --json where the command has it (the code is then read, not guessed from the exit);
      // the plain form of the same report is proven by the failing inputs above.
      for (const withJson of [takesJson(command)]) {
        it(`backstop ${commandPath} ${invalid.args.join(' ')}${withJson ? ' --json' : ''}`, TEST_TIMEOUT, async () => {
          const base = expectations[commandPath]?.base;
          assert.ok(base, `add a \`base\` invocation for ${commandPath} to \`expectations\`, to probe its options`);
          const args = [...commandPath.split(' '), ...base.args(), ...invalid.args, ...(withJson ? ['--json'] : [])];
          const outcome = await backstop(args, { ...env, ...base.env });
          const says = new RegExp(`${invalid.says ? `${invalid.says.source}|` : ''}${option.long}`);
          assertFails(args, outcome, { code: invalid.code ?? 'INVALID_INPUT', says, json: withJson });
          assert.doesNotMatch(outcome.stdout + outcome.stderr, /unknown option|missing required|too many arguments/, describeOutcome(args, outcome));
        });
      }
    }
  });

  describe('options that cannot apply say so', () => {
    it('restore --identity of a backup that is not encrypted: restored, with a warning that says it was ignored', TEST_TIMEOUT, async () => {
      const into = await createTestDatabase('restored');
      const key = paths.file('restore-key.txt');
      try {
        const made = await backstop(['keygen', '-o', key], env);
        assert.equal(made.code, 0, made.stderr);
        const args = ['restore', succeeded, '--to', into.url, '--identity', key, '--json'];
        const outcome = await backstop(args, env);
        assert.equal(outcome.code, 0, describeOutcome(args, outcome));
        assert.equal((JSON.parse(outcome.stdout) as { status: string }).status, 'restored');
        assert.match(
          outcome.stderr,
          new RegExp(`^backstop: warning: --identity \\S+ is not needed: backup ${succeeded} is not encrypted; it was ignored\\.\\n$`),
          describeOutcome(args, outcome),
        );
      } finally {
        await into.drop();
      }
    });

    it('verify --identity of a backup that is not encrypted: a warning before the drill', TEST_TIMEOUT, async () => {
      const key = paths.file('verify-key.txt');
      const made = await backstop(['keygen', '-o', key], env);
      assert.equal(made.code, 0, made.stderr);
      // A scratch server that cannot be reached ends the drill at once: only the warning matters here.
      const args = ['verify', succeeded, '--identity', key];
      const outcome = await backstop(args, { ...env, BACKSTOP_SCRATCH_URL: 'postgres://nobody@127.0.0.1:1/scratch' });
      assertNoStackTrace(args, outcome);
      assert.match(outcome.stderr, new RegExp(`backstop: warning: --identity \\S+ is not needed: backup ${succeeded} is not encrypted`), describeOutcome(args, outcome));
    });

    it('restore --schema or --table the backup does not hold: refused with what it holds, the database untouched', TEST_TIMEOUT, async () => {
      const into = await createTestDatabase('partial');
      try {
        const args = ['restore', succeeded, '--to', into.url, '--schema', 'no_such_schema', '--table', 'orders'];
        const outcome = await backstop(args, env);
        assertFails(args, outcome, { code: 'INVALID_INPUT', json: false, says: /no schema "no_such_schema" \(it holds audit, public\)/ });
        const schemas = await adminQuery<{ nspname: string }>(`select nspname from pg_namespace where nspname = 'no_such_schema'`, [], into.url);
        assert.deepEqual(schemas, [], 'pg_restore --schema used to create the schema before restoring nothing into it');
      } finally {
        await into.drop();
      }
    });

    it('prune --dry-run --delete-unknown: the plan shows the unknown backups it would delete, and deletes nothing', TEST_TIMEOUT, async () => {
      const backup = await backstop(['backup', source.url, '--target', 'unknowns', '--json'], env);
      assert.equal(backup.code, 0, backup.stderr);
      const run = JSON.parse(backup.stdout) as { id: string; artifact: { prefix: string } };
      // The catalog forgets the run: its complete backup is now unknown.
      await catalog.pool.query('delete from backstop.runs where id = $1', [run.id]);
      const args = ['prune', '--target', 'unknowns', '--dry-run', '--delete-unknown'];
      const outcome = await backstop(args, env);
      assert.equal(outcome.code, 0, describeOutcome(args, outcome));
      assert.match(outcome.stdout, new RegExp(`^  would delete unknown ${run.artifact.prefix}`, 'm'), describeOutcome(args, outcome));
      assert.doesNotMatch(outcome.stdout, /unknown complete backup\(s\) kept/, describeOutcome(args, outcome));
      await fs.access(path.join(home, 'backups', run.artifact.prefix, 'manifest.json'));
    });

    it("server --no-worker with the worker's options: refused, naming them", TEST_TIMEOUT, async () => {
      const args = ['server', '--no-worker', '--concurrency', '2', '--poll-interval', '5'];
      const outcome = await backstop(args, { ...env, ...UNREACHABLE_CATALOG });
      assertFails(args, outcome, { code: 'INVALID_INPUT', json: false, says: /--concurrency, --poll-interval set the in-process worker, which --no-worker turns off/ });
    });
  });

  describe('a listing whose reader goes away ends quietly: exit 0, nothing on stderr', PARALLEL, () => {
    for (const [, commandPath] of runnables) {
      for (const listing of expectations[commandPath]?.lists ?? []) {
        for (const closeStdout of ['at once', 'after one byte'] as const) {
          it(`backstop ${commandPath} ${listing.toString().replace(/^\(\) => /, '')}: reader gone ${closeStdout}`, TEST_TIMEOUT, async () => {
            const args = [...commandPath.split(' '), ...listing()];
            const outcome = await backstop(args, env, { closeStdout });
            const what = describeOutcome(args, outcome);
            assert.equal(outcome.signal, null, what);
            assert.equal(outcome.code, 0, what);
            assert.equal(outcome.stderr, '', what);
          });
        }
      }
    }
  });
});
