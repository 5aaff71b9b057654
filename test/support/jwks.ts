/**
 * A stand-in for Supabase Auth's signing keys: key pairs generated with WebCrypto, JWTs signed
 * with them, and the public keys served as a JWKS over HTTP on 127.0.0.1 at
 * `/auth/v1/.well-known/jwks.json`, as a project serves them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Jwk } from '../../src/supabaseCatalog/verifyJwt.ts';

type SigningKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

export interface TestSigner {
  alg: 'RS256' | 'ES256';
  kid: string;
  publicJwk: Jwk;
  privateKey: SigningKey;
}

export async function generateSigner(alg: 'RS256' | 'ES256', kid: string): Promise<TestSigner> {
  const algorithm =
    alg === 'RS256' ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' };
  const pair = (await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as { publicKey: SigningKey; privateKey: SigningKey };
  const exported = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as Jwk & { key_ops?: string[]; ext?: boolean };
  const { key_ops: _ops, ext: _ext, ...publicJwk } = exported;
  return { alg, kid, publicJwk: { ...publicJwk, kid, alg, use: 'sig' }, privateKey: pair.privateKey };
}

const base64url = (bytes: Uint8Array | string): string => Buffer.from(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes).toString('base64url');

/** A compact JWS; `header` overrides (alg, kid, typ) let a test forge what it needs. */
export async function signJwt(signer: TestSigner, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const head = base64url(JSON.stringify({ alg: signer.alg, typ: 'JWT', kid: signer.kid, ...header }));
  const body = base64url(JSON.stringify(claims));
  const algorithm = signer.alg === 'RS256' ? { name: 'RSASSA-PKCS1-v1_5' } : { name: 'ECDSA', hash: 'SHA-256' };
  const signature = await crypto.subtle.sign(algorithm, signer.privateKey, new TextEncoder().encode(`${head}.${body}`));
  return `${head}.${body}.${base64url(new Uint8Array(signature))}`;
}

export interface JwksServer {
  /** What SUPABASE_URL would be: the JWKS is at `${supabaseUrl}/auth/v1/.well-known/jwks.json`. */
  supabaseUrl: string;
  jwksUrl: string;
  /** Requests for the JWKS so far. */
  fetches(): number;
  close(): Promise<void>;
}

export async function startJwksServer(keys: Jwk[]): Promise<JwksServer> {
  let fetches = 0;
  const server: Server = createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/auth/v1/.well-known/jwks.json') {
      fetches++;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ keys }));
      return;
    }
    response.writeHead(404, { 'content-type': 'application/json' });
    response.end('{"message":"not found"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const supabaseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    supabaseUrl,
    jwksUrl: `${supabaseUrl}/auth/v1/.well-known/jwks.json`,
    fetches: () => fetches,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
