import { createHash, randomBytes } from 'node:crypto';
import { BackstopError } from '../core/errors.ts';
import { apiTokenRoles, type ApiTokenRole } from '../core/roles.ts';
import type { Queryable } from './pool.ts';

/**
 * API tokens and per-run runner tokens. A token is shown once, at creation; the catalog keeps
 * only its SHA-256. Tokens carry 256 random bits, so a plain (unsalted) hash is enough: there
 * is nothing to guess, and an indexed equality lookup stays possible.
 */

export { apiTokenRoles, type ApiTokenRole };

/** The prefixes tell the two kinds apart before any lookup, and make leaked tokens greppable. */
export const API_TOKEN_PREFIX = 'bst_';
export const RUNNER_TOKEN_PREFIX = 'bsr_';
const TOKEN_BODY = /^[A-Za-z0-9_-]{43}$/;

export interface ApiTokenRecord {
  id: string;
  name: string;
  role: ApiTokenRole;
  /** The person or service that holds the token, when its creator said. */
  owner: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

interface ApiTokenRow {
  id: string;
  name: string;
  role: ApiTokenRole;
  owner: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

function toRecord(row: ApiTokenRow): ApiTokenRecord {
  return { id: row.id, name: row.name, role: row.role, owner: row.owner, createdAt: row.created_at, lastUsedAt: row.last_used_at, revokedAt: row.revoked_at };
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newToken(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** Whether `token` has the shape of a token of that kind (cheap check before hashing and querying). */
export function looksLikeToken(token: string, prefix: string): boolean {
  return token.startsWith(prefix) && TOKEN_BODY.test(token.slice(prefix.length));
}

export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.@:-]{0,99}$/;

/**
 * Creates an API token; the returned `token` is the only time it exists outside its holder.
 * The name and role were checked by the operation that asked (src/operations/createApiToken.ts).
 */
export async function createApiToken(db: Queryable, input: { name: string; role: ApiTokenRole; owner?: string | null }): Promise<ApiTokenRecord & { token: string }> {
  const token = newToken(API_TOKEN_PREFIX);
  const { rows } = await db.query<ApiTokenRow>(
    `insert into backstop.api_tokens (name, role, owner, token_hash) values ($1, $2, $3, $4)
     returning id, name, role, owner, created_at, last_used_at, revoked_at`,
    [input.name, input.role, input.owner ?? null, hashToken(token)],
  );
  return { ...toRecord(rows[0]!), token };
}

export async function listApiTokens(db: Queryable): Promise<ApiTokenRecord[]> {
  const { rows } = await db.query<ApiTokenRow>(`select id, name, role, owner, created_at, last_used_at, revoked_at from backstop.api_tokens order by created_at, id`);
  return rows.map(toRecord);
}

export async function countActiveApiTokens(db: Queryable, role?: ApiTokenRole): Promise<number> {
  const { rows } = await db.query<{ count: number }>(`select count(*)::int as count from backstop.api_tokens where revoked_at is null and ($1::text is null or role = $1)`, [
    role ?? null,
  ]);
  return rows[0]!.count;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Revokes a token. Revoking a revoked token again is a success (the first revocation time is kept). */
export async function revokeApiToken(db: Queryable, id: string): Promise<ApiTokenRecord> {
  const notFound = new BackstopError('TOKEN_NOT_FOUND', `No API token with id ${id}. List them with \`backstop token list\`.`);
  if (!UUID.test(id)) throw notFound;
  const { rows } = await db.query<ApiTokenRow>(
    `update backstop.api_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1
     returning id, name, role, owner, created_at, last_used_at, revoked_at`,
    [id],
  );
  if (!rows[0]) throw notFound;
  return toRecord(rows[0]);
}

export interface AuthenticatedApiToken {
  id: string;
  name: string;
  role: ApiTokenRole;
  owner: string | null;
}

/**
 * The live (not revoked) token with this value, or null. `last_used_at` is refreshed at most
 * once a minute per token, so authenticating a read does not turn into a write every time.
 */
export async function authenticateApiToken(db: Queryable, token: string): Promise<AuthenticatedApiToken | null> {
  if (!looksLikeToken(token, API_TOKEN_PREFIX)) return null;
  const hash = hashToken(token);
  const { rows } = await db.query<{ id: string; name: string; role: ApiTokenRole; owner: string | null; stale: boolean }>(
    `select id, name, role, owner, (last_used_at is null or last_used_at < now() - interval '1 minute') as stale
     from backstop.api_tokens where token_hash = $1 and revoked_at is null`,
    [hash],
  );
  const row = rows[0];
  if (!row) return null;
  if (row.stale) {
    // Best effort: a failed bookkeeping write must not fail the request it belongs to.
    db.query(`update backstop.api_tokens set last_used_at = now() where id = $1`, [row.id]).catch(() => {});
  }
  return { id: row.id, name: row.name, role: row.role, owner: row.owner };
}

/**
 * Issues the runner token of a run, replacing any earlier one (there is one per run): the
 * new token is returned once, and the previous holder loses access.
 */
export async function issueRunnerToken(db: Queryable, runId: string): Promise<string> {
  const token = newToken(RUNNER_TOKEN_PREFIX);
  await db.query(
    `insert into backstop.runner_tokens (run_id, token_hash) values ($1, $2)
     on conflict (run_id) do update set token_hash = excluded.token_hash, created_at = now()`,
    [runId, hashToken(token)],
  );
  return token;
}

/**
 * How long after its run ended a runner token still opens the calls that must answer after the
 * end: a repeated finalize (its answer was lost; the same lease gets the same success) and the
 * CI job's closing `report` (which finds the run ended and leaves it). Nothing else.
 */
export const RUNNER_TOKEN_GRACE_MS = 15 * 60_000;

/**
 * `live`: the run has not ended and is before its hard deadline, so every runner route of the
 * run opens. `ended`: the run ended (or passed its deadline) less than the grace ago, so only
 * the after-the-end calls do. `expired`: nothing opens any more.
 */
export type RunnerTokenState = 'live' | 'ended' | 'expired';

/** The run a runner token is scoped to and whether it still opens anything, or null for an unknown token. */
export async function authenticateRunnerToken(
  db: Queryable,
  token: string,
  graceMs: number = RUNNER_TOKEN_GRACE_MS,
): Promise<{ runId: string; state: RunnerTokenState; status: string } | null> {
  if (!looksLikeToken(token, RUNNER_TOKEN_PREFIX)) return null;
  // The token ends with its run: at the finish, or at the run's hard deadline, whichever is first.
  const { rows } = await db.query<{ run_id: string; status: string; state: RunnerTokenState }>(
    `select t.run_id, r.status,
            case when r.finished_at is null and r.deadline_at > now() then 'live'
                 when least(coalesce(r.finished_at, r.deadline_at), r.deadline_at) + $2 * interval '1 millisecond' > now() then 'ended'
                 else 'expired' end as state
     from backstop.runner_tokens t join backstop.runs r on r.id = t.run_id
     where t.token_hash = $1`,
    [hashToken(token), graceMs],
  );
  const row = rows[0];
  return row ? { runId: row.run_id, state: row.state, status: row.status } : null;
}
