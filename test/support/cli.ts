import { spawn, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.join(repoRoot, 'bin', 'backstop.js');

/** Short leases so that tests exercise expiry in seconds. */
export const fastLeaseEnv = {
  BACKSTOP_LEASE_TTL: '2',
  BACKSTOP_HEARTBEAT_INTERVAL: '0.4',
  BACKSTOP_REAPER_INTERVAL: '0.5',
};

export interface CliProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface CliOptions {
  /** Start from this process's environment (default true); false: `env` is the whole environment. */
  inheritEnv?: boolean;
}

/** Starts `backstop ARGS` as a real child process. */
export function startCli(args: string[], env: Record<string, string>, options: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...(options.inheritEnv === false ? {} : process.env), BACKSTOP_LOG_LEVEL: 'info', ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Test clean-up: SIGKILLs every process still running, and waits until each has exited. */
export async function killAll(processes: Iterable<CliProcess>): Promise<void> {
  for (const cli of processes) {
    if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
    await cli.exited;
  }
}

/** Runs `backstop ARGS` to completion. */
export async function runCli(args: string[], env: Record<string, string>, options: CliOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = startCli(args, env, options);
  const { code } = await cli.exited;
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}
