import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { parseDatabaseUrl, redactText } from '../core/databaseUrl.ts';
import { findWorkingCommand } from './findCommand.ts';

export interface PgToolProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** Resolves when the whole process has exited, with the end of its stderr. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** SIGTERM to the whole process group, SIGKILL after `graceMs`. Resolves when it exited. */
  terminate(graceMs?: number): Promise<void>;
}

const STDERR_LIMIT = 16 * 1024;

/**
 * pg_dump writes its archive through C stdio, which buffers a pipe in 4 KiB blocks: about
 * 60,000 writes for a 250 MB dump, which Backstop picked up in about 28,000 reads of 9 KiB,
 * each a trip through the event loop and the stream stages (0.8 s of Backstop's CPU). Run under
 * coreutils' `stdbuf -o 1M` (an LD_PRELOAD that calls setvbuf), pg_dump writes 1 MiB at a
 * time and Backstop reads the same dump in about 5,000 reads of 47 KiB (0.37 s of CPU; measured
 * side by side, pg_dump 15 to a Node reader on this machine). Without a working stdbuf (not
 * GNU coreutils, or its library missing) the tool runs as it is.
 */
const STDOUT_BUFFER = '1M';

/**
 * The connection for a pg tool: the URL without its password as --dbname, the password in
 * PGPASSWORD, so it never shows up in `ps` output or in error messages.
 */
export function connectionArgs(databaseUrl: string, applicationName = 'backstop'): { dbname: string; env: Record<string, string> } {
  const url = parseDatabaseUrl(databaseUrl);
  const env: Record<string, string> = { PGAPPNAME: applicationName, PGCONNECT_TIMEOUT: '15' };
  if (url.password) env.PGPASSWORD = decodeURIComponent(url.password);
  url.password = '';
  return { dbname: url.toString(), env };
}

/**
 * Spawns a pg tool in its own process group so that cancellation reaches every process it
 * starts (pg_dump -j and pg_restore -j fork workers) and a Ctrl-C on the terminal reaches
 * only Backstop, which then decides what to stop.
 */
export function spawnPgTool(
  file: string,
  args: string[],
  env: Record<string, string>,
  options: {
    /**
     * Sees every stderr line as it arrives (the tool's --verbose progress); a line it returns
     * true for is consumed and left out of the stderr kept for error messages.
     */
    onStderrLine?: (line: string) => boolean;
    /**
     * The tool's stdout is read by Backstop (a dump): see STDOUT_BUFFER. Off for tools whose
     * output nobody reads, and for anything interactive.
     */
    bufferedStdout?: boolean;
  } = {},
): PgToolProcess {
  const stdbuf = options.bufferedStdout ? findWorkingCommand('stdbuf', ['-o', STDOUT_BUFFER, 'true']) : null;
  const [command, commandArgs] = stdbuf ? [stdbuf, ['-o', STDOUT_BUFFER, file, ...args]] : [file, args];
  const child = spawn(command, commandArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, ...env },
  });
  let stderr = '';
  let partial = '';
  const keep = (text: string) => {
    stderr = (stderr + text).slice(-STDERR_LIMIT);
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    if (!options.onStderrLine) return keep(text);
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (!options.onStderrLine(line)) keep(`${line}\n`);
  });
  child.stderr.on('end', () => {
    if (partial !== '' && !options.onStderrLine?.(partial)) keep(partial);
    partial = '';
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    child.on('error', (error) => {
      stderr += `\n${error.message}`;
    });
    child.on('close', (code, signal) => resolve({ code, signal, stderr: redactText(stderr.trim()) }));
  });
  const killGroup = (signal: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  return {
    child,
    exited,
    async terminate(graceMs = 2000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // Workers forked by the tool share its group; make sure none outlives it.
      killGroup('SIGKILL');
    },
  };
}
