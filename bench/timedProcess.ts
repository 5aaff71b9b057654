import { spawn, type ChildProcess } from 'node:child_process';

export interface TimedExit {
  /** Wall time from spawn to exit. */
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Every child the bench is running, so that an interrupt can stop them before cleaning up. */
const running = new Set<ChildProcess>();

const OUTPUT_LIMIT = 64 * 1024;
let refusing = false;

/** After an interrupt: nothing new may start while the bench is cleaning up. */
export function refuseNewChildren(): void {
  refusing = true;
}

/** Runs a command to completion and times it. Output is kept (its last 64 KiB) for errors and results. */
export function runTimed(file: string, args: string[], env: Record<string, string> = {}): Promise<TimedExit> {
  if (refusing) return Promise.reject(new Error('the bench is stopping'));
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout = (stdout + text).slice(-OUTPUT_LIMIT)));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-OUTPUT_LIMIT)));
    child.on('error', (error) => {
      running.delete(child);
      reject(error);
    });
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ ms: performance.now() - started, code, signal, stdout, stderr });
    });
  });
}

export async function runChecked(file: string, args: string[], env: Record<string, string> = {}): Promise<TimedExit> {
  const exit = await runTimed(file, args, env);
  if (exit.code !== 0) {
    throw new Error(`${file} ${args.filter((arg) => !arg.includes('://')).join(' ')} failed (${exit.signal ?? `exit ${exit.code}`}): ${exit.stderr.trim().slice(-2000)}`);
  }
  return exit;
}

/**
 * Asks every running child to stop (SIGTERM: a bench case then stops its own pg_dump or
 * pg_restore), SIGKILL after `graceMs`, and resolves once all are gone.
 */
export async function stopRunningChildren(graceMs = 5000): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          child.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}
