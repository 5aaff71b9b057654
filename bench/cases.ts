/**
 * The measured cases: pg_dump / pg_restore run directly, Backstop cases in a child process
 * (bench/runCase.ts) so that each one's peak RSS is its own.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectionArgs } from '../src/pgtools/spawnPgTool.ts';
import type { CaseResult, CaseSpec } from './runCase.ts';
import { runChecked, runTimed, type TimedExit } from './timedProcess.ts';

export interface Sample {
  /** Wall time of the operation (for Backstop: measured inside its process, start-up excluded). */
  ms: number;
  /** Wall time of the whole process, Node start-up and module loading included. */
  processMs: number;
  /** Artifact or output size. */
  bytes?: number;
  /** Peak RSS of the measured process (not of pg_dump / pg_restore under Backstop). */
  rssKiB?: number | undefined;
  /** User + system CPU of the process tree (pg_dump / pg_restore under Backstop included; the server excluded). */
  cpuMs?: number | undefined;
  prefix?: string;
  /** A Backstop restore's phases, ms from its start: the spool verified, pg_restore done, rows checked. */
  timings?: { spooledMs: number; pgRestoreDoneMs: number; checkedMs: number };
  /** The machine's 1-minute load average when the sample started (other work on the machine shows here). */
  load?: number;
  /** A Backstop case: the CPU of its own process (zstd included), without the tools it ran. */
  selfCpuMs?: number;
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
let runCaseScript = fileURLToPath(new URL('./runCase.ts', import.meta.url));

/**
 * Compiles bench/runCase.ts and the sources it imports into `dir` with tsc, as `npm run build`
 * compiles the published package: the measured processes then run the JavaScript a user's
 * `backstop` runs, with no TypeScript stripper loaded. Later cases run the compiled script.
 */
export async function useCompiledRunCase(dir: string): Promise<void> {
  const tsconfig = path.join(dir, 'tsconfig.json');
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(
    tsconfig,
    JSON.stringify({
      extends: path.join(repoRoot, 'tsconfig.json'),
      compilerOptions: { noEmit: false, rootDir: repoRoot, outDir: dir },
      include: [],
      files: [path.join(repoRoot, 'bench', 'runCase.ts')],
    }),
  );
  // Dependencies (and their types, which tsc looks for from the tsconfig's folder) beside the output.
  await fs.symlink(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
  const compiled = await runTimed(path.join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', tsconfig], {});
  // tsc reports type errors on stdout.
  if (compiled.code !== 0) throw new Error(`tsc could not compile the measured code (exit ${compiled.code}):\n${compiled.stdout.trim().slice(-3000)}`);
  // The package's version, which the compiled modules read from beside them.
  await fs.copyFile(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'));
  runCaseScript = path.join(dir, 'bench', 'runCase.js');
}
const TIME = '/usr/bin/time';

let haveTime: boolean | undefined;
async function timeAvailable(): Promise<boolean> {
  haveTime ??= await fs.access(TIME).then(
    () => true,
    () => false,
  );
  return haveTime;
}

interface Measured {
  exit: TimedExit;
  /** Peak RSS of the largest process in the tree (GNU time), when GNU time is installed. */
  treeRssKiB?: number;
  /** User + system CPU of the process and every descendant it waited for. */
  cpuMs?: number;
}

/**
 * Runs a command under GNU time (when installed) for the CPU time of its whole process tree:
 * on a shared machine, CPU time is a steadier measure of a pipeline's cost than wall time.
 */
async function runMeasured(file: string, args: string[], env: Record<string, string>): Promise<Measured> {
  if (!(await timeAvailable())) return { exit: await runChecked(file, args, env) };
  const out = path.join(os.tmpdir(), `backstop-bench-time-${randomBytes(6).toString('hex')}`);
  try {
    const exit = await runChecked(TIME, ['-f', '%M %U %S', '-o', out, file, ...args], env);
    const [rss, user, system] = (await fs.readFile(out, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
    return { exit, treeRssKiB: rss!, cpuMs: Math.round((user! + system!) * 1000) };
  } finally {
    await fs.rm(out, { force: true });
  }
}

export async function pgDumpToFile(pgDump: string, databaseUrl: string, file: string, extraArgs: string[]): Promise<Sample> {
  const connection = connectionArgs(databaseUrl, 'bench');
  await fs.rm(file, { force: true });
  const run = await runMeasured(pgDump, ['--format=custom', ...extraArgs, '--no-password', `--file=${file}`, `--dbname=${connection.dbname}`], connection.env);
  const { size } = await fs.stat(file);
  return { ms: run.exit.ms, processMs: run.exit.ms, bytes: size, rssKiB: run.treeRssKiB, cpuMs: run.cpuMs };
}

/** `pg_dump -Fd -j N` into a fresh directory: the parallel floor with `-Z0`. */
export async function pgDumpToDirectory(pgDump: string, databaseUrl: string, directory: string, jobs: number, extraArgs: string[]): Promise<Sample> {
  const connection = connectionArgs(databaseUrl, 'bench');
  await fs.rm(directory, { recursive: true, force: true });
  const run = await runMeasured(pgDump, ['--format=directory', `--jobs=${jobs}`, ...extraArgs, '--no-password', `--file=${directory}`, `--dbname=${connection.dbname}`], connection.env);
  let bytes = 0;
  for (const entry of await fs.readdir(directory)) bytes += (await fs.stat(path.join(directory, entry))).size;
  return { ms: run.exit.ms, processMs: run.exit.ms, bytes, rssKiB: run.treeRssKiB, cpuMs: run.cpuMs };
}

/** pg_restore of a custom-format file or a directory archive (pg_restore tells them apart). */
export async function pgRestoreFromFile(pgRestore: string, file: string, toUrl: string, jobs: number): Promise<Sample> {
  const connection = connectionArgs(toUrl, 'bench');
  const run = await runMeasured(pgRestore, ['--exit-on-error', '--no-password', `--jobs=${jobs}`, `--dbname=${connection.dbname}`, file], connection.env);
  return { ms: run.exit.ms, processMs: run.exit.ms, rssKiB: run.treeRssKiB, cpuMs: run.cpuMs };
}

export async function runBackstopCase(spec: CaseSpec, env: Record<string, string> = {}): Promise<Sample> {
  const { exit, cpuMs } = await runMeasured(process.execPath, [runCaseScript], { ...env, BACKSTOP_BENCH_CASE: JSON.stringify(spec) });
  const line = exit.stdout.trim().split('\n').at(-1) ?? '';
  let result: CaseResult;
  try {
    result = JSON.parse(line) as CaseResult;
  } catch {
    throw new Error(`bench/runCase.ts printed no result: ${exit.stdout.slice(-500)} ${exit.stderr.slice(-1500)}`);
  }
  return {
    ms: result.ms,
    processMs: exit.ms,
    rssKiB: result.maxRssKiB,
    cpuMs,
    ...(result.storedBytes !== undefined && { bytes: result.storedBytes }),
    ...(result.prefix !== undefined && { prefix: result.prefix }),
    ...(result.timings !== undefined && { timings: result.timings }),
    ...(result.selfCpuMs !== undefined && { selfCpuMs: result.selfCpuMs }),
  };
}
