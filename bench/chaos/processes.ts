import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The Backstop processes of a chaos run, each a real `backstop` CLI process: long-lived
 * workers and a server, restarted whenever they exit (as systemd or Kubernetes would), and
 * short-lived `backstop run RUN_ID` runners. Output goes to one log file per process.
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.join(repoRoot, 'bin', 'backstop.js');

export type ProcessRole = 'worker' | 'server' | 'runner';

export interface ExitRecord {
  name: string;
  generation: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Wall clock, ms. */
  at: number;
  /** The chaos engine sent the signal that ended it. */
  expected: boolean;
  /** The CLI's own error line (`… [CODE]`, or `backstop: unexpected error: …`), when it printed one. */
  error: string | null;
}

export interface ManagedProcess {
  name: string;
  role: ProcessRole;
  generation: number;
  pid: number;
  child: ChildProcess;
  /** Wall clock, ms. */
  startedAt: number;
  /** Started and listening for work (long-lived processes); runners are ready at once. */
  ready: boolean;
  /** SIGSTOPped and not yet continued. */
  stopped: boolean;
  /** The engine signalled it to end (kill -9, SIGTERM, shutdown). */
  endRequested: boolean;
  exit: ExitRecord | null;
  exited: Promise<ExitRecord>;
  /** For a runner: its run. */
  runId?: string;
  /** For the server: its URL once it printed it. */
  url?: string;
}

export interface SupervisorOptions {
  env: Record<string, string>;
  logDir: string;
  workers: number;
  concurrency: number;
  log: (message: string) => void;
}

export interface Supervisor {
  /** Long-lived processes by name (`worker-1`… and `server`): the current generation. */
  get(name: string): ManagedProcess | undefined;
  longLived(): ManagedProcess[];
  /** Runners still alive. */
  runners(): ManagedProcess[];
  startRunner(runId: string): ManagedProcess;
  /** Every exit so far, long-lived and runners. */
  exits(): ExitRecord[];
  /** A process that is running, ready and not stopped. */
  healthy(process: ManagedProcess): boolean;
  /** The server's URL while a ready server runs. */
  serverUrl(): string | null;
  /** Resolves once every long-lived process is ready. */
  allReady(timeoutMs: number): Promise<void>;
  /** Continues stopped processes, asks every process to stop (SIGTERM), then kills what is left. */
  close(timeoutMs: number): Promise<void>;
}

export function startSupervisor(options: SupervisorOptions): Supervisor {
  const current = new Map<string, ManagedProcess>();
  const liveRunners = new Set<ManagedProcess>();
  const exits: ExitRecord[] = [];
  const generations = new Map<string, number>();
  let closing = false;

  const launch = (name: string, role: ProcessRole, args: string[], runId?: string): ManagedProcess => {
    const generation = (generations.get(name) ?? 0) + 1;
    generations.set(name, generation);
    const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    const logFile = createWriteStream(path.join(options.logDir, `${name.replace(/[^a-z0-9.-]/gi, '_')}.${generation}.log`));
    const managed: ManagedProcess = {
      name,
      role,
      generation,
      pid: child.pid ?? -1,
      child,
      startedAt: Date.now(),
      ready: role === 'runner',
      stopped: false,
      endRequested: false,
      exit: null,
      exited: undefined as unknown as Promise<ExitRecord>,
      runId,
    };
    let pending = '';
    let tail = '';
    const scan = (chunk: Buffer) => {
      logFile.write(chunk);
      tail = (tail + chunk.toString()).slice(-8192);
      if (managed.ready && (role !== 'server' || managed.url)) return;
      pending = (pending + chunk.toString()).slice(-4096);
      if (role === 'worker' && pending.includes('"msg":"worker started"')) managed.ready = true;
      const serving = /Backstop is serving (http:\/\/\S+) /.exec(pending);
      if (role === 'server' && serving) {
        managed.url = serving[1];
        managed.ready = true;
      }
    };
    child.stdout!.on('data', scan);
    child.stderr!.on('data', scan);
    managed.exited = new Promise<ExitRecord>((resolve) => {
      child.on('close', (code, signal) => {
        logFile.end();
        // Errors are one line on stderr (not JSON, unlike the logs); an unexpected one starts with "backstop:".
        const error =
          tail
            .split('\n')
            .filter((line) => line.trim() !== '' && !line.startsWith('{'))
            .at(-1) ?? null;
        const record: ExitRecord = { name, generation, code, signal, at: Date.now(), expected: managed.endRequested, error: code !== 0 && code !== null ? error : null };
        managed.exit = record;
        managed.ready = false;
        exits.push(record);
        resolve(record);
      });
    });
    return managed;
  };

  const startLongLived = (name: string, role: 'worker' | 'server') => {
    const args =
      role === 'worker'
        ? ['worker', '--concurrency', String(options.concurrency), '--poll-interval', '0.2', '--drain-timeout', '2']
        : ['server', '--host', '127.0.0.1', '--port', '0', '--concurrency', String(options.concurrency), '--poll-interval', '0.2', '--drain-timeout', '2'];
    const managed = launch(name, role, args);
    current.set(name, managed);
    void managed.exited.then((record) => {
      if (closing) return;
      options.log(`${name} (pid ${managed.pid}) exited (${record.signal ?? `code ${record.code}`}); restarting it`);
      // Restarted like a service manager would, after a short pause; a longer one when it did
      // not last (it cannot reach the catalog while that is down, and would only fail again).
      setTimeout(
        () => {
          if (!closing) startLongLived(name, role);
        },
        record.at - managed.startedAt < 10_000 ? 1500 : 300,
      );
    });
  };

  for (let index = 1; index <= options.workers; index++) startLongLived(`worker-${index}`, 'worker');
  startLongLived('server', 'server');

  const supervisor: Supervisor = {
    get: (name) => current.get(name),
    longLived: () => [...current.values()],
    runners: () => [...liveRunners],
    startRunner(runId) {
      const managed = launch(`runner-${runId.slice(0, 8)}`, 'runner', ['run', runId], runId);
      liveRunners.add(managed);
      void managed.exited.then(() => liveRunners.delete(managed));
      return managed;
    },
    exits: () => [...exits],
    healthy: (managed) => managed.exit === null && managed.ready && !managed.stopped,
    serverUrl() {
      const server = current.get('server');
      return server && supervisor.healthy(server) ? (server.url ?? null) : null;
    },
    async allReady(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (![...current.values()].every((managed) => managed.ready)) {
        if (Date.now() > deadline) {
          const late = [...current.values()].filter((managed) => !managed.ready).map((managed) => managed.name);
          throw new Error(`not ready within ${timeoutMs} ms: ${late.join(', ')} (logs in ${options.logDir})`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async close(timeoutMs) {
      closing = true;
      const all = [...current.values(), ...liveRunners].filter((managed) => managed.exit === null);
      for (const managed of all) {
        managed.endRequested = true;
        if (managed.stopped) managed.child.kill('SIGCONT');
        managed.child.kill('SIGTERM');
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([Promise.all(all.map((managed) => managed.exited)), timedOut]);
      clearTimeout(timer);
      for (const managed of all) if (managed.exit === null) managed.child.kill('SIGKILL');
      await Promise.all(all.map((managed) => managed.exited));
    },
  };
  return supervisor;
}
