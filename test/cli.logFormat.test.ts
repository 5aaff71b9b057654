import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from './support/cli.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { waitFor } from './support/wait.ts';
import { stopEmbeddedServers } from '../src/operations/stopEmbeddedServers.ts';

/**
 * Logs for a person on a terminal, JSON lines for whatever collects them: a worker and a
 * one-shot command run on a real pseudo-terminal (util-linux `script`, no native module) and
 * through a pipe, with and without BACKSTOP_LOG_FORMAT.
 */

const TEST_TIMEOUT = { timeout: 120_000 };
// "[07:04:08.289] INFO: worker started {"worker":…}", colours aside.
const PRETTY_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): \S/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matches terminal colour escapes on purpose
const ANSI = /\x1b\[[0-9;]*m/g;

interface Output {
  /** What the process wrote to stderr (through a pipe), or to the terminal (stdout and stderr together). */
  text: string;
  code: number | null;
}

/**
 * Starts `backstop ARGS`, on a pseudo-terminal when `terminal`; ends it with SIGTERM once
 * `until` shows in its output (a worker), or lets it end on its own.
 */
async function runBackstop(args: string[], env: Record<string, string>, options: { terminal: boolean; until?: RegExp }): Promise<Output> {
  const pidFile = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-pty-')), 'pid');
  const quoted = args.map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(' ');
  // The shell records its pid, then becomes the CLI: that is the process to signal.
  const command = `echo $$ > '${pidFile}'; exec '${process.execPath}' bin/backstop.js ${quoted}`;
  const environment: Record<string, string> = { ...(process.env as Record<string, string>), TERM: 'xterm-256color', ...env };
  for (const name of ['BACKSTOP_LOG_FORMAT', 'NO_COLOR', 'FORCE_COLOR']) if (!(name in env)) delete environment[name];
  const child = options.terminal
    ? spawn('script', ['-qefc', command, '/dev/null'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: environment })
    : spawn('sh', ['-c', command], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], env: environment });
  let text = '';
  (options.terminal ? child.stdout! : child.stderr!).on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    if (options.until) {
      const until = options.until;
      await waitFor(`${until} in the output of backstop ${args.join(' ')}`, () => until.test(text.replace(ANSI, '')), 60_000);
      process.kill(Number(await fs.readFile(pidFile, 'utf8')), 'SIGTERM');
    }
    const code = await exited;
    return { text, code };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await fs.rm(path.dirname(pidFile), { recursive: true, force: true });
  }
}

/** Lines as printed, colours and the terminal's carriage returns removed. */
function linesOf(output: Output): string[] {
  return output.text
    .replace(ANSI, '')
    .replaceAll('\r', '')
    .split('\n')
    .filter((line) => line.trim() !== '');
}

function assertPretty(output: Output, what: string): void {
  const lines = linesOf(output);
  assert.ok(lines.length > 0, `${what}: no log lines`);
  for (const line of lines) {
    // An error's details continue on indented lines below its log line.
    assert.ok(PRETTY_LINE.test(line) || /^\s{4}\S/.test(line), `${what}: not a line for a person: ${JSON.stringify(line)}\n${output.text}`);
  }
}

function assertJsonLines(output: Output, what: string): void {
  const lines = linesOf(output);
  assert.ok(lines.length > 0, `${what}: no log lines`);
  for (const line of lines) {
    const entry = JSON.parse(line) as { level?: number; time?: number; msg?: string };
    assert.equal(typeof entry.level, 'number', `${what}: ${line}`);
    assert.equal(typeof entry.time, 'number', `${what}: ${line}`);
  }
}

/** `backstop trigger TARGET`: the queued run's id, from its stdout. */
async function triggerRun(env: Record<string, string>, target: string): Promise<string> {
  const child = spawn(process.execPath, ['bin/backstop.js', 'trigger', target], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, stdout);
  return stdout.trim();
}

describe('logs: pretty on a terminal, JSON lines when piped', () => {
  let catalog: TestCatalog;
  let home: string;
  let env: Record<string, string>;
  const worker = ['worker', '--poll-interval', '0.2'];
  const workerStarted = /worker started/;

  before(async () => {
    catalog = await createTestCatalog();
    home = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-logs-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_HOME: home, BACKSTOP_LOG_LEVEL: 'info' };
  });

  after(async () => {
    await catalog?.close();
    // Drills started a scratch server in this home: stop it before removing the home.
    if (home) await stopEmbeddedServers({ home, databaseUrl: 'not embedded' });
    if (home) await fs.rm(home, { recursive: true, force: true });
  });

  it('a worker on a terminal writes lines for a person: time, level, message, key fields', TEST_TIMEOUT, async () => {
    const output = await runBackstop(worker, env, { terminal: true, until: workerStarted });
    assertPretty(output, 'worker on a terminal');
    const lines = linesOf(output);
    assert.ok(
      lines.some((line) => /^\[[\d:.]+\] INFO: worker started \{"worker":"[^"]+","concurrency":1\}$/.test(line)),
      output.text,
    );
    assert.ok(
      lines.some((line) => /INFO: worker stopped/.test(line)),
      `it stops on SIGTERM and says so:\n${output.text}`,
    );
    assert.equal(output.code, 0, output.text);
  });

  it('the same worker through a pipe writes JSON lines', TEST_TIMEOUT, async () => {
    const output = await runBackstop(worker, env, { terminal: false, until: workerStarted });
    assertJsonLines(output, 'worker through a pipe');
    assert.ok(
      linesOf(output).some((line) => (JSON.parse(line) as { msg: string }).msg === 'worker started'),
      output.text,
    );
  });

  it('BACKSTOP_LOG_FORMAT=json on a terminal: JSON lines', TEST_TIMEOUT, async () => {
    const output = await runBackstop(worker, { ...env, BACKSTOP_LOG_FORMAT: 'json' }, { terminal: true, until: workerStarted });
    assertJsonLines(output, 'BACKSTOP_LOG_FORMAT=json on a terminal');
  });

  it('BACKSTOP_LOG_FORMAT=pretty through a pipe: lines for a person, without colours', TEST_TIMEOUT, async () => {
    const output = await runBackstop(worker, { ...env, BACKSTOP_LOG_FORMAT: 'pretty' }, { terminal: false, until: workerStarted });
    assertPretty(output, 'BACKSTOP_LOG_FORMAT=pretty through a pipe');
    assert.doesNotMatch(output.text, ANSI, 'no colour codes where no terminal reads them');
  });

  it('a failed one-shot run on a terminal: its error on the line below, a type, a code and a message, no stack', TEST_TIMEOUT, async () => {
    // A target whose database is gone (added without the connection check), and a run of it.
    const added = await runBackstop(['target', 'add', 'gone', '--database-url', 'postgres://nobody@127.0.0.1:1/nowhere', '--skip-checks'], env, { terminal: false });
    assert.equal(added.code, 0, added.text);
    const runId = await triggerRun(env, 'gone');
    const output = await runBackstop(['run', runId], env, { terminal: true });
    assert.equal(output.code, 8, output.text);
    const lines = linesOf(output);
    const logged = lines.filter((line) => !line.startsWith('Run '));
    assertPretty({ ...output, text: logged.join('\n') }, 'a one-shot command on a terminal');
    assert.ok(
      lines.some((line) => /^\s{4}err: BackstopError \[DATABASE_UNREACHABLE\]: Cannot connect/.test(line)),
      output.text,
    );
    assert.doesNotMatch(output.text, /\n\s+at \S/, `no stack trace:\n${output.text}`);
  });

  it('an unknown BACKSTOP_LOG_FORMAT is refused with the values it takes (exit 2)', TEST_TIMEOUT, async () => {
    const output = await runBackstop(['runs'], { ...env, BACKSTOP_LOG_FORMAT: 'fancy' }, { terminal: false });
    assert.equal(output.code, 2, output.text);
    assert.match(output.text, /BACKSTOP_LOG_FORMAT: .*"json"\|"pretty"/);
  });
});
