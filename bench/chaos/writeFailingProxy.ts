import http from 'node:http';
import type { Socket } from 'node:net';

/**
 * An HTTP proxy in front of an S3 endpoint that can start failing writes: while failing,
 * every PUT, POST and DELETE has its connection reset, those in flight included, and reads
 * still pass. This is a store whose writes break while it still answers — a full disk, a
 * revoked write permission, a flaky load balancer — rather than one that is simply down.
 * (Making a local folder read-only would not do: the tests run as root, which ignores modes.)
 */
export interface WriteFailingProxy {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  failWrites(failing: boolean): void;
  /** Write requests refused so far. */
  refused(): number;
  close(): Promise<void>;
}

const WRITE_METHODS = new Set(['PUT', 'POST', 'DELETE']);

export async function startWriteFailingProxy(upstream: string): Promise<WriteFailingProxy> {
  const target = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true });
  const writesInFlight = new Set<Socket>();
  let failing = false;
  let refused = 0;

  const server = http.createServer((request, response) => {
    if (failing && WRITE_METHODS.has(request.method ?? '')) {
      refused++;
      request.socket.destroy();
      return;
    }
    const isWrite = WRITE_METHODS.has(request.method ?? '');
    if (isWrite) writesInFlight.add(request.socket);
    const headers = { ...request.headers };
    // The proxy reads the whole body itself; the upstream needs no 100-continue handshake.
    delete headers.expect;
    const forwarded = http.request({ host: target.hostname, port: target.port, method: request.method, path: request.url, headers, agent }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
    forwarded.on('error', () => response.destroy());
    response.on('close', () => {
      writesInFlight.delete(request.socket);
      forwarded.destroy();
    });
    request.pipe(forwarded);
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    failWrites(next) {
      failing = next;
      if (!next) return;
      // "Starts failing": uploads already under way break too.
      for (const socket of writesInFlight) {
        refused++;
        socket.destroy();
      }
      writesInFlight.clear();
    },
    refused: () => refused,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
