import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { minimalEnvironment } from './childEnvironment.ts';
import { hostSystemFrom, type HostSystem } from './clientInstallAdvice.ts';
import { parseToolVersion, pickPgTool, type PgToolCandidate } from './pickPgTool.ts';

const run = promisify(execFile);

export type PgToolName = 'pg_dump' | 'pg_restore' | 'pg_dumpall' | 'psql';

/** Extra folders (BACKSTOP_PG_BIN) searched first; with `only`, nothing else is searched. */
export interface PgToolSearch {
  dirs: string[];
  only: boolean;
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await fs.access(file, fs.constants.X_OK);
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

async function pgConfigBindir(): Promise<string[]> {
  try {
    const { stdout } = await run('pg_config', ['--bindir'], { timeout: 5000, env: minimalEnvironment() });
    return [stdout.trim()];
  } catch {
    return [];
  }
}

/**
 * Where packages put one folder per major: Debian/Ubuntu (/usr/lib/postgresql/N/bin), the
 * PostgreSQL project's RPMs (/usr/pgsql-N/bin), Alpine (/usr/libexec/postgresqlN) and
 * Homebrew's keg-only postgresql@N (/opt/homebrew/opt on Apple silicon, /usr/local/opt on Intel).
 */
const versionedFolders: Array<{ parent: string; entry: RegExp; bin: string }> = [
  { parent: '/usr/lib/postgresql', entry: /^\d+(\.\d+)?$/, bin: 'bin' },
  { parent: '/usr', entry: /^pgsql-\d+$/, bin: 'bin' },
  { parent: '/usr/libexec', entry: /^postgresql\d+$/, bin: '' },
  { parent: '/opt/homebrew/opt', entry: /^postgresql@\d+$/, bin: 'bin' },
  { parent: '/usr/local/opt', entry: /^postgresql@\d+$/, bin: 'bin' },
];

async function versionDirectories(): Promise<string[]> {
  const found = await Promise.all(
    versionedFolders.map(async ({ parent, entry, bin }) => {
      const names = await fs.readdir(parent).catch(() => [] as string[]);
      return names.filter((name) => entry.test(name)).map((name) => path.join(parent, name, bin));
    }),
  );
  return found.flat();
}

let hostSystem: Promise<HostSystem> | null = null;

/** This machine, for the install command an error names; read once. */
export function readHostSystem(): Promise<HostSystem> {
  hostSystem ??= fs
    .readFile('/etc/os-release', 'utf8')
    .catch(() => null)
    .then((osRelease) => hostSystemFrom({ platform: process.platform, arch: process.arch, env: process.env, osRelease }));
  return hostSystem;
}

const cache = new Map<string, Promise<PgToolCandidate[]>>();

/** Every installed copy of `tool` with its version, deduplicated by real path. */
export function discoverPgTools(tool: PgToolName, search: PgToolSearch = { dirs: [], only: false }): Promise<PgToolCandidate[]> {
  const key = `${tool}\0${search.dirs.join(':')}\0${search.only}\0${process.env.PATH ?? ''}`;
  let found = cache.get(key);
  if (!found) {
    found = discover(tool, search);
    cache.set(key, found);
    found.catch(() => cache.delete(key));
  }
  return found;
}

async function discover(tool: PgToolName, search: PgToolSearch): Promise<PgToolCandidate[]> {
  const [bindir, versionDirs] = search.only ? [[], []] : await Promise.all([pgConfigBindir(), versionDirectories()]);
  const dirs = search.only ? search.dirs : [...search.dirs, ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...bindir, ...versionDirs];
  const seen = new Set<string>();
  const files: string[] = [];
  for (const dir of dirs) {
    const file = path.join(dir, tool);
    if (!(await isExecutable(file))) continue;
    let real: string;
    try {
      real = await fs.realpath(file);
    } catch {
      continue;
    }
    // Debian's /usr/bin/pg_dump is a wrapper script that picks a version itself: resolve it
    // to the real per-version binary by its reported version instead of trusting the wrapper.
    if (seen.has(real)) continue;
    seen.add(real);
    // Debian's wrapper only ever runs one of the per-version binaries, which are searched too
    // (and preferred): asking it as well would cost a Perl start-up for nothing.
    if (path.basename(real) === 'pg_wrapper' && versionDirs.length > 0) continue;
    files.push(file);
  }
  // Asked all at once (Debian's wrapper alone is a Perl start-up), kept in search order.
  const versions = await Promise.all(
    files.map(async (file) => {
      try {
        const { stdout } = await run(file, ['--version'], { timeout: 5000, env: minimalEnvironment() });
        const parsed = parseToolVersion(stdout);
        return parsed ? { path: file, ...parsed } : null;
      } catch {
        // Not runnable (missing libraries, wrong architecture): not a candidate.
        return null;
      }
    }),
  );
  const candidates = versions.filter((candidate): candidate is PgToolCandidate => candidate !== null);
  // Prefer a real per-version binary over a wrapper that reports the same version.
  const byVersion = new Map<string, PgToolCandidate>();
  for (const candidate of candidates) {
    const previous = byVersion.get(candidate.version);
    if (!previous || (previous.path.startsWith('/usr/bin/') && !candidate.path.startsWith('/usr/bin/'))) {
      byVersion.set(candidate.version, candidate);
    }
  }
  return [...byVersion.values()];
}

export async function findPgTool(tool: PgToolName, minMajor: number, search?: PgToolSearch, what = 'server'): Promise<PgToolCandidate> {
  return pickPgTool(tool, await discoverPgTools(tool, search), minMajor, what, await readHostSystem());
}
