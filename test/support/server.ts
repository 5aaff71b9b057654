import pino from 'pino';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { createPool, type Pool } from '../../src/db/pool.ts';
import { getRun } from '../../src/db/runRecords.ts';
import { createApiToken, type ApiTokenRole } from '../../src/db/tokens.ts';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/startServer.ts';
import { fastLeaseEnv, repoRoot } from './cli.ts';
import { waitFor } from './wait.ts';

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  json: any;
}

export interface TestServer {
  url: string;
  server: RunningServer;
  config: Config;
  pool: Pool;
  tokens: Record<ApiTokenRole, string>;
  /** Every response body this server sent through `request`, for secret greps. */
  bodies: string[];
  /** Every log line the server wrote (debug level and up), for secret greps. */
  logs: string[];
  request(method: string, path: string, options?: { token?: string | null; body?: unknown; rawBody?: string; headers?: Record<string, string> }): Promise<HttpResult>;
  close(): Promise<void>;
}

export interface TestServerOptions extends Partial<Pick<ServerOptions, 'ssePollIntervalMs' | 'sseHeartbeatMs'>> {
  /** Catalog URL (a test catalog, or a closed port for an outage). */
  catalogUrl: string;
  /** Runs an in-process worker (default: none). */
  worker?: boolean;
  env?: Record<string, string>;
  /** Creates an admin, an operator and a viewer token (default true; needs a reachable catalog). */
  tokens?: boolean;
  /** Listen on this port (default: a free one), e.g. to restart a server where its clients expect it. */
  port?: number;
  /** Listen on this address (default 127.0.0.1); `url` still connects through 127.0.0.1. */
  host?: string;
}

/**
 * A real server on 127.0.0.1 and a free port, in this process, with its own pool; leases,
 * heartbeats and the reaper shortened to seconds. `close()` stops everything it started.
 */
export async function startTestServer(options: TestServerOptions): Promise<TestServer> {
  // The harness's home for tests (BACKSTOP_HOME), never the checkout: drills start a scratch server in it.
  const home = process.env.BACKSTOP_HOME ? { BACKSTOP_HOME: process.env.BACKSTOP_HOME } : {};
  const config = loadConfig({ ...fastLeaseEnv, ...home, BACKSTOP_DATABASE_URL: options.catalogUrl, BACKSTOP_LOG_LEVEL: 'silent', ...options.env }, repoRoot);
  const logs: string[] = [];
  const log = pino(
    { level: 'debug' },
    {
      write(line: string) {
        logs.push(line);
        if (process.env.BACKSTOP_TEST_SERVER_LOG) process.stderr.write(line);
      },
    },
  );
  const pool = createPool(options.catalogUrl, { max: 10 });
  let server: RunningServer;
  try {
    server = await startServer(
      { pool, config, log },
      {
        host: options.host ?? '127.0.0.1',
        port: options.port ?? 0,
        worker: options.worker ? { concurrency: 2, pollIntervalMs: 100, drainTimeoutMs: 2_000 } : null,
        processMetrics: false,
        ssePollIntervalMs: options.ssePollIntervalMs ?? 100,
        sseHeartbeatMs: options.sseHeartbeatMs,
      },
    );
  } catch (error) {
    await pool.end();
    throw error;
  }
  const tokens = {} as Record<ApiTokenRole, string>;
  if (options.tokens ?? true) {
    for (const role of ['admin', 'operator', 'viewer'] as const) tokens[role] = (await createApiToken(pool, { name: `test ${role}`, role })).token;
  }
  const bodies: string[] = [];
  // A wildcard listen address accepts loopback connections too.
  const url = options.host && options.host !== '127.0.0.1' ? `http://127.0.0.1:${new URL(server.url).port}` : server.url;
  return {
    url,
    server,
    config,
    pool,
    tokens,
    bodies,
    logs,
    async request(method, path, request = {}) {
      const headers: Record<string, string> = { ...request.headers };
      const token = request.token === undefined ? tokens.admin : request.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      let body: string | undefined = request.rawBody;
      if (request.body !== undefined) {
        body = JSON.stringify(request.body);
        headers['content-type'] ??= 'application/json';
      }
      const response = await fetch(url + path, { method, headers, body });
      const text = await response.text();
      bodies.push(text);
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: response.status, headers: response.headers, text, json };
    },
    async close() {
      await server.close('test finished');
      await pool.end();
    },
  };
}

/**
 * Triggers a backup of `target` through the API and waits until a worker finished it;
 * returns its run id. A backup that ends otherwise fails the wait with its error.
 */
export async function backUpThroughApi(api: TestServer, target: string, timeoutMs = 60_000): Promise<string> {
  const triggered = await api.request('POST', '/api/v1/runs', { body: { target } });
  if (triggered.status !== 201) throw new Error(`triggering a backup of ${target} answered ${triggered.status}: ${triggered.text}`);
  const id = triggered.json.id as string;
  await waitFor(
    `the backup of ${target}`,
    async () => {
      const run = await getRun(api.pool, id);
      if (run.status === 'failed' || run.status === 'timed_out') throw new Error(`backup ${run.status}: ${run.error?.message}`);
      return run.status === 'succeeded';
    },
    timeoutMs,
  );
  return id;
}

/** A port nothing listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/**
 * Reads a Server-Sent Events response as it arrives: `messages` grows live, `comments`
 * counts comment lines (heartbeats), `ended` settles when the server closes the stream.
 */
export function readEventStream(response: Response): { messages: SseMessage[]; comments: string[]; ended: Promise<void> } {
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const ended = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let boundary = buffer.indexOf('\n\n'); boundary !== -1; boundary = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const message: SseMessage = { event: 'message', data: '' };
        let hasData = false;
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) comments.push(line.slice(1).trim());
          else if (line.startsWith('id: ')) message.id = line.slice(4);
          else if (line.startsWith('event: ')) message.event = line.slice(7);
          else if (line.startsWith('data: ')) {
            message.data += (hasData ? '\n' : '') + line.slice(6);
            hasData = true;
          }
        }
        if (hasData) messages.push(message);
      }
    }
  })();
  return { messages, comments, ended };
}
