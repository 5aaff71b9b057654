import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A real s3rver (the S3 test peer) in a child process, on 127.0.0.1, with a fresh folder and
 * one bucket.
 *
 * Why a child process: s3rver 3.7 encrypts ListObjectsV2 continuation tokens with DES, which
 * OpenSSL 3 only offers through its legacy provider (`--openssl-legacy-provider`, a process-wide
 * flag); without it every truncated listing answers 500 InternalError. A separate process also
 * makes an outage real: `halt()` kills it with SIGKILL, cutting every connection mid-request.
 *
 * s3rver 3.7 answers AbortMultipartUpload with MethodNotAllowed and keeps uploaded parts in
 * `<bucket>/._S3rver_uploads/<uploadId>/`; a small middleware in front of it implements
 * AbortMultipartUpload (delete that folder) so tests can check that a failed put really aborts
 * its upload. It also reports every request to the parent. Note that s3rver checks only the
 * access key id of a V4 signature, not the signature itself.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
}

export interface S3rverHandle {
  /** `http://127.0.0.1:<port>`; the port stays the same across `halt()` / `restart()`. */
  readonly endpoint: string;
  readonly bucket: string;
  /** Credentials s3rver accepts (its built-in account) and the region its tokens expect. */
  readonly env: Record<string, string>;
  /** The folder s3rver keeps buckets in. */
  readonly directory: string;
  /** The s3rver process (a new one after each restart). */
  readonly server: ChildProcess;
  /** Every request the server received so far, in order. */
  requests(): Promise<RecordedRequest[]>;
  /** An `s3://` store URL for `prefix` in the test bucket on this server. */
  storeUrl(prefix: string, options?: Record<string, string>): string;
  /** Ids of multipart uploads begun and neither completed nor aborted. */
  pendingMultipartUploads(): Promise<string[]>;
  /** Files of one pending multipart upload (`1`, `1.md5`, … per stored part). */
  multipartUploadFiles(uploadId: string): Promise<string[]>;
  /** An outage: kills the server (SIGKILL), cutting every open connection; data is kept. */
  halt(): Promise<void>;
  /** Serves again on the same port from the same folder. */
  restart(): Promise<void>;
  /** Stops the server for good and removes its folder. */
  stop(): Promise<void>;
}

const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
const CHILD_FLAG = '--backstop-s3rver-child';
const START_TIMEOUT_MS = 15_000;

interface ChildOptions {
  port: number;
  directory: string;
  bucket: string;
}
type ChildMessage = { type: 'listening'; port: number } | { type: 'request'; request: RecordedRequest } | { type: 'synced'; id: number };

/** `startTimeoutMs`: how long a start (or restart) may take; a heavily loaded machine needs longer. */
export async function startS3rver(bucket = 'backstop-test', options: { startTimeoutMs?: number } = {}): Promise<S3rverHandle> {
  const startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS;
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-s3rver-'));
  const uploadsDir = path.join(directory, bucket, '._S3rver_uploads');
  const recorded: RecordedRequest[] = [];
  const syncs = new Map<number, () => void>();
  let nextSync = 0;
  let child: ChildProcess | undefined;

  const spawnServer = async (port: number): Promise<{ process: ChildProcess; port: number }> => {
    const options: ChildOptions = { port, directory, bucket };
    const started = fork(fileURLToPath(import.meta.url), [CHILD_FLAG, JSON.stringify(options)], {
      execArgv: ['--openssl-legacy-provider'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    started.on('message', (message: ChildMessage) => {
      if (message.type === 'request') recorded.push(message.request);
      if (message.type === 'synced') syncs.get(message.id)?.();
    });
    try {
      const listening = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`s3rver did not start within ${startTimeoutMs} ms`)), startTimeoutMs);
        started.on('message', (message: ChildMessage) => {
          if (message.type === 'listening') {
            clearTimeout(timer);
            resolve(message.port);
          }
        });
        started.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`s3rver exited before listening (code ${code}, signal ${signal})`));
        });
      });
      return { process: started, port: listening };
    } catch (error) {
      await kill(started);
      throw error;
    }
  };

  let first;
  try {
    first = await spawnServer(0);
  } catch (error) {
    await fs.rm(directory, { recursive: true, force: true });
    throw error;
  }
  child = first.process;
  const { port } = first;
  const endpoint = `http://127.0.0.1:${port}`;

  const halt = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running !== undefined) await kill(running);
  };

  return {
    endpoint,
    bucket,
    env: { ...CREDENTIALS },
    directory,
    get server() {
      if (child === undefined) throw new Error('s3rver is halted');
      return child;
    },
    async requests() {
      // IPC keeps order: once the child answers, every request it saw before has been reported.
      const running = child;
      if (running !== undefined) {
        const id = ++nextSync;
        const synced = new Promise<void>((resolve) => syncs.set(id, resolve));
        running.send({ type: 'sync', id });
        await Promise.race([synced, once(running, 'exit')]);
        syncs.delete(id);
      }
      return [...recorded];
    },
    storeUrl(prefix: string, options: Record<string, string> = {}) {
      const query = Object.entries({ endpoint, forcePathStyle: 'true', ...options })
        .map(([name, value]) => `${name}=${value}`)
        .join('&');
      return `s3://${bucket}/${prefix}?${query}`;
    },
    async pendingMultipartUploads() {
      return readdirOrEmpty(uploadsDir);
    },
    async multipartUploadFiles(uploadId: string) {
      return readdirOrEmpty(path.join(uploadsDir, uploadId));
    },
    halt,
    async restart() {
      if (child !== undefined) throw new Error('s3rver is already running');
      // The port was ours a moment ago; were it taken in between, the child fails to start.
      child = (await spawnServer(port)).process;
    },
    async stop() {
      await halt();
      await fs.rm(directory, { recursive: true, force: true });
    },
  };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** The parts of s3rver (a Koa app, shipped without type declarations) used here. */
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  type: string;
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface S3rverServer {
  middleware: KoaMiddleware[];
  run(): Promise<{ address: string; port: number }>;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverServer;

async function serveInChild({ port, directory, bucket }: ChildOptions): Promise<void> {
  const send = (message: ChildMessage): void => {
    process.send?.(message);
  };
  // Orphaned when the test process dies: the IPC channel closes, and so does the server.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: { type: string; id: number }) => {
    if (message.type === 'sync') send({ type: 'synced', id: message.id });
  });

  const uploadsDir = path.join(directory, bucket, '._S3rver_uploads');
  const frontMiddleware: KoaMiddleware = async (ctx, next) => {
    send({ type: 'request', request: { method: ctx.method, path: ctx.path, query: { ...ctx.query } } });
    const uploadId = ctx.query.uploadId;
    if (ctx.method !== 'DELETE' || typeof uploadId !== 'string') return next();
    const uploadDir = path.join(uploadsDir, uploadId);
    const exists = /^[0-9a-f]+$/.test(uploadId) && (await fs.stat(uploadDir).catch(() => null)) !== null;
    if (!exists) {
      ctx.status = 404;
      ctx.type = 'application/xml';
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>`;
      return;
    }
    await fs.rm(uploadDir, { recursive: true, force: true });
    ctx.status = 204;
  };

  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory,
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  // Koa composes its middleware list when it starts listening, so this one runs first.
  server.middleware.unshift(frontMiddleware);
  const address = await server.run();
  send({ type: 'listening', port: address.port });
}

if (process.argv[2] === CHILD_FLAG) {
  await serveInChild(JSON.parse(process.argv[3] ?? '{}') as ChildOptions);
}
