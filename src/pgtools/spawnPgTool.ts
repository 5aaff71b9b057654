import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { parseDatabaseUrl, redactText } from '../core/databaseUrl.ts';
import { BackstopError } from '../core/errors.ts';
import { pgToolEnvironment } from './childEnvironment.ts';
import { findWorkingCommand } from './findCommand.ts';

export interface PgToolProcess {
  /** stdin is a pipe only when asked for (`stdin: true`): a restore fed from the store. */
  child: ChildProcessByStdio<Writable | null, Readable, Readable>;
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
 * libpq's connection parameters that carry a secret (the ones libpq itself shows masked):
 * never in argv, where `ps` shows them to every user of the machine.
 */
const SECRET_PARAMETERS = ['password', 'sslpassword', 'oauth_client_secret'];

/** How a pg tool connects to a database, split so that no secret reaches its command line. */
export interface PgConnection {
  /** The URL without any secret (userinfo password and secret query parameters removed): for `--dbname`. */
  dbname: string;
  /** PGAPPNAME, PGCONNECT_TIMEOUT, and PGPASSWORD when the URL has a password (userinfo or `?password=`). */
  env: Record<string, string>;
  /**
   * Secret parameters libpq reads from no environment variable (sslpassword,
   * oauth_client_secret): spawnPgTool writes them to a private service file for the tool's
   * lifetime.
   */
  serviceParameters: Record<string, string>;
}

function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The connection for a pg tool: the URL without its secrets as --dbname, the password in
 * PGPASSWORD and the other secrets in a private service file (see spawnPgTool), so that none
 * shows up in `ps` output or in error messages. The rest of the query string is kept byte for
 * byte: libpq decodes only %-escapes, and re-encoding it (URLSearchParams turns spaces into
 * "+") would change what libpq reads.
 */
export function connectionArgs(databaseUrl: string, applicationName = 'backstop'): PgConnection {
  const url = parseDatabaseUrl(databaseUrl);
  const env: Record<string, string> = { PGAPPNAME: applicationName, PGCONNECT_TIMEOUT: '15' };
  let password = url.password ? decodeComponent(url.password) : '';
  url.password = '';
  const kept: string[] = [];
  const serviceParameters: Record<string, string> = {};
  let namesService = false;
  for (const part of url.search.replace(/^\?/, '').split('&')) {
    if (part === '') continue;
    const separator = part.indexOf('=');
    const key = decodeComponent(separator < 0 ? part : part.slice(0, separator));
    if (key === 'service') namesService = true;
    if (!SECRET_PARAMETERS.includes(key)) {
      kept.push(part);
      continue;
    }
    // As libpq: a later value wins, and a query parameter wins over the userinfo.
    const value = decodeComponent(separator < 0 ? '' : part.slice(separator + 1));
    if (key === 'password') password = value;
    else serviceParameters[key] = value;
  }
  url.search = kept.length > 0 ? `?${kept.join('&')}` : '';
  if (password) env.PGPASSWORD = password;
  const secrets = Object.keys(serviceParameters);
  if (secrets.length > 0 && namesService) {
    throw new BackstopError(
      'INVALID_INPUT',
      `The database URL names a service and gives ${secrets.join(', ')}: Backstop passes ${secrets.length === 1 ? 'that secret' : 'those secrets'} to pg tools through a service file of its own, so put ${secrets.length === 1 ? 'it' : 'them'} in your service's definition (pg_service.conf) instead of the URL.`,
    );
  }
  for (const [key, value] of Object.entries(serviceParameters)) {
    if (/[\r\n]/.test(value) || value !== value.trim()) {
      throw new BackstopError('INVALID_INPUT', `The database URL's ${key} starts or ends with white space or holds a line break, which a pg tool cannot be given safely. Change it.`);
    }
  }
  return { dbname: url.toString(), env, serviceParameters };
}

/** Writes `parameters` as service "backstop" in a new private folder; returns the variables that select it and a cleanup. */
function writeServiceFile(parameters: Record<string, string>): { env: Record<string, string>; remove: () => void } {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'backstop-pg-'));
  const file = path.join(folder, 'pg_service.conf');
  try {
    const lines = Object.entries(parameters).map(([key, value]) => `${key}=${value}`);
    writeFileSync(file, `[backstop]\n${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    rmSync(folder, { recursive: true, force: true });
    throw error;
  }
  return { env: { PGSERVICEFILE: file, PGSERVICE: 'backstop' }, remove: () => rmSync(folder, { recursive: true, force: true }) };
}

/**
 * Spawns a pg tool in its own process group so that cancellation reaches every process it
 * starts (pg_dump -j and pg_restore -j fork workers) and a Ctrl-C on the terminal reaches
 * only Backstop, which then decides what to stop.
 */
export function spawnPgTool(
  file: string,
  args: string[],
  connection: PgConnection | Record<string, string>,
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
    /** The tool reads its input from a pipe Backstop writes (pg_restore of a streamed file). */
    stdin?: boolean;
  } = {},
): PgToolProcess {
  const isConnection = typeof connection.dbname === 'string' && typeof connection.env === 'object';
  const { env, serviceParameters } = isConnection ? (connection as PgConnection) : { env: connection as Record<string, string>, serviceParameters: {} };
  const stdbuf = options.bufferedStdout ? findWorkingCommand('stdbuf', ['-o', STDOUT_BUFFER, 'true']) : null;
  const [command, commandArgs] = stdbuf ? [stdbuf, ['-o', STDOUT_BUFFER, file, ...args]] : [file, args];
  // The service file lives as long as the tool: pg_restore -j and pg_dumpall connect again later.
  const service = Object.keys(serviceParameters).length > 0 ? writeServiceFile(serviceParameters) : null;
  let child: ChildProcessByStdio<Writable | null, Readable, Readable>;
  try {
    child = spawn(command, commandArgs, {
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
      // Only what the tool needs: never Backstop's own secrets (see childEnvironment.ts).
      env: pgToolEnvironment({ ...env, ...service?.env }),
    }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  } catch (error) {
    service?.remove();
    throw error;
  }
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
    child.on('close', (code, signal) => {
      service?.remove();
      resolve({ code, signal, stderr: redactText(stderr.trim()) });
    });
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
