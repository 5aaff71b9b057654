/**
 * Verifies Supabase Auth access tokens (JWTs signed with the project's asymmetric signing keys,
 * RS256 or ES256) against the project's JWKS, with WebCrypto only, so the same code runs in
 * the Deno edge runtime and in Node. No Deno or Node APIs: fetch, crypto.subtle, atob,
 * TextEncoder/TextDecoder.
 *
 * Hazards it closes: `alg: none` and HS256 (a public key used as an HMAC secret) are refused
 * before any key is looked at; the algorithm must match the key's type and, when the key
 * names one, its `alg`; an unknown `kid` refreshes the key set at most once per cooldown, so
 * a flood of forged kids cannot turn into a flood of JWKS requests.
 */

export interface Jwk {
  kty: string;
  kid?: string;
  alg?: string;
  use?: string;
  key_ops?: string[];
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

export interface JwtClaims {
  sub: string;
  exp: number;
  iss?: string;
  aud?: string | string[];
  role?: string;
  nbf?: number;
  iat?: number;
  [claim: string]: unknown;
}

/** A token that is missing, malformed, forged, expired, or meant for someone else. */
export class JwtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JwtError';
  }
}

export interface KeySet {
  /** The current keys; `refresh` asks for a fresh copy (honoured at most once per cooldown). */
  keys(options?: { refresh?: boolean }): Promise<Jwk[]>;
}

const ALGORITHMS = {
  RS256: { kty: 'RSA', import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, verify: { name: 'RSASSA-PKCS1-v1_5' } },
  ES256: { kty: 'EC', crv: 'P-256', import: { name: 'ECDSA', namedCurve: 'P-256' }, verify: { name: 'ECDSA', hash: 'SHA-256' } },
} as const;
type Algorithm = keyof typeof ALGORITHMS;
/** WebCrypto's CryptoKey, named the way both Deno's and Node's type declarations accept. */
type VerifyKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

/** A key set fetched from a URL (`${SUPABASE_URL}/auth/v1/.well-known/jwks.json`), cached. */
export function remoteKeySet(url: string, options: { fetch?: typeof fetch; cacheMs?: number; cooldownMs?: number; now?: () => number; timeoutMs?: number } = {}): KeySet {
  const fetchJwks = options.fetch ?? fetch;
  const cacheMs = options.cacheMs ?? 10 * 60_000;
  const cooldownMs = options.cooldownMs ?? 30_000;
  const now = options.now ?? Date.now;
  let cached: { keys: Jwk[]; at: number } | null = null;
  let loading: Promise<Jwk[]> | null = null;

  const load = (): Promise<Jwk[]> =>
    (loading ??= (async () => {
      try {
        const response = await fetchJwks(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(options.timeoutMs ?? 5000) });
        if (!response.ok) throw new Error(`the JWKS endpoint answered ${response.status}`);
        const body = (await response.json()) as { keys?: unknown };
        if (!Array.isArray(body.keys)) throw new Error('the JWKS document has no keys array');
        cached = { keys: body.keys as Jwk[], at: now() };
        return cached.keys;
      } finally {
        loading = null;
      }
    })());

  return {
    async keys({ refresh = false } = {}) {
      const age = cached ? now() - cached.at : Infinity;
      if (cached && age < cacheMs && !(refresh && age >= cooldownMs)) return cached.keys;
      return load();
    },
  };
}

export function staticKeySet(keys: Jwk[]): KeySet {
  return { keys: async () => keys };
}

export interface JwtVerifierOptions {
  keySet: KeySet;
  /** `${SUPABASE_URL}/auth/v1` */
  issuer: string;
  /** 'authenticated' for signed-in users. */
  audience: string;
  /** Seconds since the epoch. */
  now?: () => number;
  /** Tolerated clock difference for exp and nbf, seconds. */
  leewaySeconds?: number;
}

export function createJwtVerifier(options: JwtVerifierOptions): (token: string) => Promise<JwtClaims> {
  const now = options.now ?? (() => Date.now() / 1000);
  const leeway = options.leewaySeconds ?? 30;
  const imported = new Map<string, Promise<VerifyKey>>();

  const importKey = (jwk: Jwk, alg: Algorithm): Promise<VerifyKey> => {
    const cacheKey = `${alg}:${JSON.stringify(jwk)}`;
    let key = imported.get(cacheKey);
    if (!key) {
      const { kty, crv, n, e, x, y } = jwk;
      key = crypto.subtle.importKey('jwk', { kty, crv, n, e, x, y, ext: true }, ALGORITHMS[alg].import, false, ['verify']);
      key.catch(() => imported.delete(cacheKey));
      imported.set(cacheKey, key);
    }
    return key;
  };

  const candidates = (keys: Jwk[], kid: string | undefined, alg: Algorithm): Jwk[] =>
    keys.filter((key) => {
      const spec = ALGORITHMS[alg];
      return (
        (kid === undefined || key.kid === kid) &&
        key.kty === spec.kty &&
        (!('crv' in spec) || key.crv === spec.crv) &&
        (key.alg === undefined || key.alg === alg) &&
        (key.use === undefined || key.use === 'sig') &&
        (key.key_ops === undefined || key.key_ops.includes('verify'))
      );
    });

  return async (token: string): Promise<JwtClaims> => {
    const parts = token.split('.');
    if (parts.length !== 3) throw new JwtError('The token is not a JWT (three dot-separated parts).');
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = decodeJson(headerPart, 'header') as { alg?: unknown; kid?: unknown };
    const alg = header.alg;
    if (alg !== 'RS256' && alg !== 'ES256') {
      throw new JwtError(`Tokens signed with ${typeof alg === 'string' ? alg : 'no algorithm'} are not accepted; Supabase signing keys use RS256 or ES256.`);
    }
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    let keys = candidates(await options.keySet.keys(), kid, alg);
    if (keys.length === 0 && kid !== undefined) keys = candidates(await options.keySet.keys({ refresh: true }), kid, alg);
    if (keys.length === 0) throw new JwtError(`No ${alg} signing key${kid ? ` with kid "${kid}"` : ''} in the project's JWKS.`);

    const signature = decodeBase64Url(signaturePart, 'signature');
    if (alg === 'ES256' && signature.length !== 64) throw new JwtError('The ES256 signature is not 64 bytes.');
    const signed = new TextEncoder().encode(`${headerPart}.${payloadPart}`);
    let valid = false;
    for (const jwk of keys) {
      let key: VerifyKey;
      try {
        key = await importKey(jwk, alg);
      } catch {
        continue;
      }
      if (await crypto.subtle.verify(ALGORITHMS[alg].verify, key, signature, signed)) {
        valid = true;
        break;
      }
    }
    if (!valid) throw new JwtError('The token signature is invalid.');

    const claims = decodeJson(payloadPart, 'payload') as Partial<JwtClaims>;
    const time = now();
    if (typeof claims.exp !== 'number') throw new JwtError('The token has no expiry (exp).');
    if (time > claims.exp + leeway) throw new JwtError('The token has expired: sign in again, or refresh the session.');
    if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || time + leeway < claims.nbf)) throw new JwtError('The token is not valid yet (nbf).');
    if (claims.iss !== options.issuer) throw new JwtError(`The token was issued by ${JSON.stringify(claims.iss ?? null)}, not by this project's Auth (${options.issuer}).`);
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(options.audience)) throw new JwtError(`The token is not meant for "${options.audience}" users (aud).`);
    if (typeof claims.sub !== 'string' || claims.sub === '') throw new JwtError('The token names no user (sub).');
    return claims as JwtClaims;
  };
}

function decodeBase64Url(text: string, what: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new JwtError(`The token ${what} is not base64url.`);
  const base64 = text.replaceAll('-', '+').replaceAll('_', '/') + '='.repeat((4 - (text.length % 4)) % 4);
  let binary: string;
  try {
    binary = atob(base64);
  } catch {
    throw new JwtError(`The token ${what} is not base64url.`);
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function decodeJson(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(decodeBase64Url(text, what)));
  } catch (error) {
    if (error instanceof JwtError) throw error;
    throw new JwtError(`The token ${what} is not JSON.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JwtError(`The token ${what} is not a JSON object.`);
  return value as Record<string, unknown>;
}
