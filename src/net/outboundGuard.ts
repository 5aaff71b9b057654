import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { judgeAddress, parseAddress, parsePrivateEndpointAllowance, PRIVATE_ENDPOINTS_SETTING, type AddressClass, type PrivateEndpointAllowance } from '../core/addressClass.ts';
import { BackstopError } from '../core/errors.ts';
import { parseS3Url } from '../storage/s3Url.ts';

/**
 * Every request Backstop makes to a URL someone configured (webhooks, Slack, S3 endpoints,
 * the GitHub API) connects through here. The host is resolved once, every address it resolves
 * to is judged (src/core/addressClass.ts), and the socket connects to exactly the addresses
 * that were judged: a DNS name that answers a public address to a check and 127.0.0.1 to the
 * connection (DNS rebinding) cannot get past, because there is no second lookup. Addresses
 * that are not public are refused before any packet is sent unless BACKSTOP_ALLOW_PRIVATE_ENDPOINTS
 * covers them.
 */

/** A connection refused for the address it would have reached; `what` names the URL at creation time. */
export class OutboundAddressRefused extends BackstopError {
  readonly address: string;
  constructor(host: string, address: string, addressClass: AddressClass, what?: string) {
    const named = host === address || host === `[${address}]` ? address : `${host} (${address})`;
    const subject = what ? `The ${what} points at ${named}` : `Refused to connect to ${named}`;
    super(
      'INVALID_INPUT',
      `${subject}, ${addressClass.range}: Backstop sends requests only to public addresses. If this endpoint is meant to be reached, allow it with ${PRIVATE_ENDPOINTS_SETTING}=${address} (a comma-separated list of addresses and CIDR ranges, or true for every address).`,
    );
    this.address = address;
  }
}

const allowances = new Map<string, PrivateEndpointAllowance>();

/** BACKSTOP_ALLOW_PRIVATE_ENDPOINTS of `env`, read at every use (so a change applies to the next request). */
export function privateEndpointAllowance(env: NodeJS.ProcessEnv = process.env): PrivateEndpointAllowance {
  const value = env[PRIVATE_ENDPOINTS_SETTING] ?? '';
  let allowance = allowances.get(value);
  if (allowance === undefined) {
    allowance = parsePrivateEndpointAllowance(value);
    allowances.set(value, allowance);
  }
  return allowance;
}

/** Throws OutboundAddressRefused unless a connection from `host` to `address` is allowed. */
function assertAllowed(host: string, address: string, env: NodeJS.ProcessEnv, what?: string): void {
  const verdict = judgeAddress(address, privateEndpointAllowance(env));
  if (!verdict.allowed) throw new OutboundAddressRefused(host, address, verdict.class, what);
}

/** RFC 6761: these names are loopback whatever a resolver says, so they are judged without one. */
function isLocalhostName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

/**
 * A `lookup` for net.connect / tls.connect: resolves once and hands the socket only the
 * addresses it judged. Refuses the whole name when any of its addresses is refused.
 */
export function guardedLookup(env: NodeJS.ProcessEnv = process.env): net.LookupFunction {
  return (hostname, options, callback) => {
    const lookupOptions: dns.LookupAllOptions = { ...(typeof options === 'object' ? options : { family: options }), all: true };
    const answer = (addresses: dns.LookupAddress[]) => {
      try {
        if (isLocalhostName(hostname)) assertAllowed(hostname, '127.0.0.1', env);
        for (const { address } of addresses) assertAllowed(hostname, address, env);
      } catch (error) {
        callback(error as NodeJS.ErrnoException, '', 0);
        return;
      }
      if (options?.all) callback(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    };
    dns.lookup(hostname, lookupOptions, (error, addresses) => {
      if (error) callback(error, '', 0);
      else if (addresses.length === 0) callback(Object.assign(new Error(`${hostname} resolved to no address`), { code: 'ENOTFOUND' }), '', 0);
      else answer(addresses);
    });
  };
}

/** net.connect skips `lookup` for a literal IP: such hosts are judged here instead. */
function literalRefusal(host: string | null | undefined, env: NodeJS.ProcessEnv): Error | null {
  if (!host) return null;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (net.isIP(bare) === 0) return null;
  try {
    assertAllowed(host, bare, env);
    return null;
  } catch (error) {
    return error as Error;
  }
}

type AgentOptions = http.AgentOptions & { env?: NodeJS.ProcessEnv };

/**
 * Node skips `lookup` for a literal address, so both agents judge those here, before any
 * socket exists; true when the connection was refused (the callback has the reason).
 */
function refusedBeforeConnecting(options: http.ClientRequestArgs, env: NodeJS.ProcessEnv, callback: ((err: Error | null, stream: Duplex) => void) | undefined): boolean {
  const refused = literalRefusal(options.host ?? options.hostname, env);
  if (!refused) return false;
  process.nextTick(() => callback?.(refused, undefined as unknown as Duplex));
  return true;
}

/** An http.Agent whose every connection goes through the guard. */
export class GuardedHttpAgent extends http.Agent {
  readonly #env: NodeJS.ProcessEnv;
  constructor({ env = process.env, ...options }: AgentOptions = {}) {
    super({ ...options, lookup: guardedLookup(env) } as http.AgentOptions);
    this.#env = env;
  }
  override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    return refusedBeforeConnecting(options, this.#env, callback) ? undefined : super.createConnection(options, callback);
  }
}

/** An https.Agent whose every connection goes through the guard (certificates are checked against the host name as usual). */
export class GuardedHttpsAgent extends https.Agent {
  readonly #env: NodeJS.ProcessEnv;
  constructor({ env = process.env, ...options }: https.AgentOptions & { env?: NodeJS.ProcessEnv } = {}) {
    super({ ...options, lookup: guardedLookup(env) } as https.AgentOptions);
    this.#env = env;
  }
  override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    return refusedBeforeConnecting(options, this.#env, callback) ? undefined : super.createConnection(options, callback);
  }
}

/** For the AWS SDK's S3Client `requestHandler` (NodeHttpHandler options): the SDK's defaults, guarded. */
export function guardedS3RequestHandler(env: NodeJS.ProcessEnv, connectionTimeout: number) {
  return {
    connectionTimeout,
    httpAgent: new GuardedHttpAgent({ env, keepAlive: true, maxSockets: 50 }),
    httpsAgent: new GuardedHttpsAgent({ env, keepAlive: true, maxSockets: 50 }),
  };
}

/**
 * Creation-time check of a URL someone configures: a clear refusal while they are there to
 * read it. A host that does not resolve now is let through (it may resolve later); every
 * request is judged again when it is sent.
 */
export async function assertOutboundUrlAllowed(raw: string, what: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return; // the caller's shape check reports it
  }
  const host = url.hostname;
  const bare = host.replace(/^\[|\]$/g, '');
  if (parseAddress(bare)) return assertAllowed(host, bare, env, what);
  if (isLocalhostName(host)) return assertAllowed(host, '127.0.0.1', env, what);
  const addresses = await Promise.race([
    dns.promises.lookup(host, { all: true }).catch(() => []),
    new Promise<dns.LookupAddress[]>((resolve) => setTimeout(() => resolve([]), 3000).unref()),
  ]);
  for (const { address } of addresses) assertAllowed(host, address, env, what);
}

/**
 * The creation-time check of a target's outbound URLs: its S3 store's custom endpoint and the
 * channel endpoints given (see channelEndpoints; endpoints kept from before are judged when
 * they are sent to).
 */
export async function assertTargetEndpointsAllowed(fields: { storeUrl?: string; endpoints?: { url: string; what: string }[] }): Promise<void> {
  if (fields.storeUrl?.startsWith('s3://')) {
    const { endpoint } = parseS3Url(fields.storeUrl);
    if (endpoint !== undefined) await assertOutboundUrlAllowed(endpoint, 'S3 endpoint');
  }
  for (const endpoint of fields.endpoints ?? []) await assertOutboundUrlAllowed(endpoint.url, endpoint.what);
}

/**
 * The one address a connection to `host` may use (an SMTP server, say, reached by a library
 * that resolves names itself): resolved once and judged like every outbound request, so the
 * library connects to the very address that was judged. Throws OutboundAddressRefused.
 */
export function resolveGuardedHost(host: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const refused = literalRefusal(bare, env);
  if (refused) return Promise.reject(refused);
  if (net.isIP(bare) !== 0) return Promise.resolve(bare);
  return new Promise((resolve, reject) => {
    guardedLookup(env)(bare, { all: true }, (error, addresses) => {
      if (error) reject(error);
      else resolve((addresses as unknown as dns.LookupAddress[])[0]!.address);
    });
  });
}

const RESPONSE_LIMIT = 16 * 1024 * 1024;
const REDIRECTS = [301, 302, 303, 307, 308];
const NULL_BODY = [101, 103, 204, 205, 304];

export interface GuardedRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** `follow` (default, at most 5 hops, each guarded) or `manual`. */
  redirect?: 'follow' | 'manual';
  env?: NodeJS.ProcessEnv;
}

const agents = { http: new GuardedHttpAgent(), https: new GuardedHttpsAgent() };

/**
 * The subset of fetch() Backstop's HTTP clients use, through guarded agents (Node's fetch
 * cannot take a `lookup`). Network failures reject as fetch's do: TypeError("fetch failed")
 * with the reason as `cause` (an OutboundAddressRefused for a refusal); an abort rejects with
 * the signal's reason. Bodies over 16 MiB are cut off with an error.
 */
export async function guardedFetch(raw: string, init: GuardedRequestInit = {}): Promise<Response> {
  let url = new URL(raw);
  let method = (init.method ?? 'GET').toUpperCase();
  let body = init.body;
  let headers: Record<string, string> = Object.fromEntries(Object.entries(init.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]));
  for (let hop = 0; ; hop++) {
    const answer = await requestOnce(url, method, headers, body, init.signal, init.env);
    const location = answer.headers.location;
    if (init.redirect !== 'manual' && REDIRECTS.includes(answer.status) && typeof location === 'string') {
      if (hop >= 5) throw new TypeError('fetch failed', { cause: new Error('more than 5 redirects') });
      const next = new URL(location, url);
      // As fetch does: credentials do not follow a redirect to another origin.
      if (next.origin !== url.origin) delete headers.authorization;
      if (answer.status === 303 || ((answer.status === 301 || answer.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([name]) => name !== 'content-type' && name !== 'content-length'));
      }
      url = next;
      continue;
    }
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) responseHeaders.append(name, item);
    }
    const status = answer.status;
    return new Response(NULL_BODY.includes(status) ? null : new Uint8Array(answer.body), { status, statusText: answer.statusText, headers: responseHeaders });
  }
}

function requestOnce(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal | undefined,
  env: NodeJS.ProcessEnv | undefined,
): Promise<{ status: number; statusText: string; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return reject(new TypeError('fetch failed', { cause: new Error(`unsupported protocol ${url.protocol}`) }));
    const secure = url.protocol === 'https:';
    const agent = env === undefined ? (secure ? agents.https : agents.http) : secure ? new GuardedHttpsAgent({ env }) : new GuardedHttpAgent({ env });
    const failed = (error: Error) => reject(signal?.aborted ? signal.reason : new TypeError('fetch failed', { cause: error }));
    const request = (secure ? https : http).request(url, { method, headers, agent, signal }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > RESPONSE_LIMIT) response.destroy(new Error(`the answer is larger than ${RESPONSE_LIMIT} bytes`));
        else chunks.push(chunk);
      });
      response.on('error', failed);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, statusText: response.statusMessage ?? '', headers: response.headers, body: Buffer.concat(chunks) }));
    });
    request.on('error', failed);
    request.end(body);
  });
}
