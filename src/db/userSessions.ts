import { randomBytes } from 'node:crypto';
import type { Queryable } from './pool.ts';
import { hashToken } from './tokens.ts';

/**
 * Dashboard sign-ins (migrations 018 and 020). The cookie value and the sign-in state are
 * random and looked up by their SHA-256, as API tokens are: a copy of the catalog opens no
 * session. A session that ended keeps its row, with why, until its time is up, so that every
 * later request with its cookie is told the reason, whichever request ended it.
 */

export interface SignInAttempt {
  nonce: string;
  codeVerifier: string;
}

/** How long the provider may take to send the browser back. */
const SIGN_IN_ATTEMPT_MINUTES = 10;

export async function saveSignInAttempt(db: Queryable, state: string, attempt: SignInAttempt): Promise<void> {
  // Abandoned attempts are removed by the next one, so the table holds ten minutes' worth at most.
  await db.query(`delete from backstop.sign_in_attempts where created_at < now() - $1 * interval '1 minute'`, [SIGN_IN_ATTEMPT_MINUTES]);
  await db.query(`insert into backstop.sign_in_attempts (state_hash, nonce, code_verifier) values ($1, $2, $3)`, [hashToken(state), attempt.nonce, attempt.codeVerifier]);
}

/** The attempt of this state, deleted as it is read (a callback URL works once), or null. */
export async function takeSignInAttempt(db: Queryable, state: string): Promise<SignInAttempt | null> {
  const { rows } = await db.query<{ nonce: string; code_verifier: string }>(
    `delete from backstop.sign_in_attempts where state_hash = $1 and created_at > now() - $2 * interval '1 minute' returning nonce, code_verifier`,
    [hashToken(state), SIGN_IN_ATTEMPT_MINUTES],
  );
  return rows[0] ? { nonce: rows[0].nonce, codeVerifier: rows[0].code_verifier } : null;
}

export interface ProviderTokens {
  accessToken: string;
  refreshToken: string | null;
  /** When the access token stops working, if the provider said. */
  accessExpiresAt: string | null;
}

export interface UserSession extends ProviderTokens {
  id: string;
  csrfToken: string;
  provider: string;
  subject: string;
  email: string | null;
  name: string | null;
}

interface UserSessionRow {
  id: string;
  csrf_token: string;
  provider: string;
  subject: string;
  email: string | null;
  name: string | null;
  // Null only once the session ended; live sessions are read with `ended_at is null`.
  access_token: string;
  refresh_token: string | null;
  access_expires_at: string | null;
}

function toSession(row: UserSessionRow): UserSession {
  return {
    id: row.id,
    csrfToken: row.csrf_token,
    provider: row.provider,
    subject: row.subject,
    email: row.email,
    name: row.name,
    accessToken: row.access_token,
    refreshToken: row.refresh_token,
    accessExpiresAt: row.access_expires_at,
  };
}

/** What a cookie value looks like (32 random bytes, base64url): anything else is looked up nowhere. */
const COOKIE_VALUE = /^[A-Za-z0-9_-]{43}$/;

const COLUMNS = 'id, csrf_token, provider, subject, email, name, access_token, refresh_token, access_expires_at';

/** Opens a session; the returned `cookie` is its only copy outside the browser. */
export async function createUserSession(
  db: Queryable,
  input: { provider: string; subject: string; email: string | null; name: string | null; tokens: ProviderTokens; ttlMs: number },
): Promise<{ session: UserSession; cookie: string }> {
  const cookie = randomBytes(32).toString('base64url');
  const csrfToken = randomBytes(32).toString('base64url');
  // Ended sessions stay until their time is up as well: their cookies expire then too.
  await db.query(`delete from backstop.user_sessions where expires_at < now()`);
  const { rows } = await db.query<UserSessionRow>(
    `insert into backstop.user_sessions (cookie_hash, csrf_token, provider, subject, email, name, access_token, refresh_token, access_expires_at, expires_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + $10 * interval '1 millisecond')
     returning ${COLUMNS}`,
    [
      hashToken(cookie),
      csrfToken,
      input.provider,
      input.subject,
      input.email,
      input.name,
      input.tokens.accessToken,
      input.tokens.refreshToken,
      input.tokens.accessExpiresAt,
      input.ttlMs,
    ],
  );
  return { session: toSession(rows[0]!), cookie };
}

/** The live session this cookie value opens, or null (unknown, signed out or past its life). */
export async function findUserSession(db: Queryable, cookie: string): Promise<UserSession | null> {
  if (!COOKIE_VALUE.test(cookie)) return null;
  const { rows } = await db.query<UserSessionRow>(`select ${COLUMNS} from backstop.user_sessions where cookie_hash = $1 and expires_at > now() and ended_at is null`, [
    hashToken(cookie),
  ]);
  return rows[0] ? toSession(rows[0]) : null;
}

/** Why the session of this cookie value ended, if it did and its time is not up yet; else null. */
export async function findUserSessionEnd(db: Queryable, cookie: string): Promise<string | null> {
  if (!COOKIE_VALUE.test(cookie)) return null;
  const { rows } = await db.query<{ end_reason: string }>(`select end_reason from backstop.user_sessions where cookie_hash = $1 and expires_at > now() and ended_at is not null`, [
    hashToken(cookie),
  ]);
  return rows[0]?.end_reason ?? null;
}

/** Keeps the tokens a refresh returned, and the person's current name and address. */
export async function updateUserSession(db: Queryable, id: string, update: ProviderTokens & { email: string | null; name: string | null }): Promise<void> {
  // An ended session gets no tokens back from a refresh that finished after it ended.
  await db.query(`update backstop.user_sessions set access_token = $2, refresh_token = $3, access_expires_at = $4, email = $5, name = $6 where id = $1 and ended_at is null`, [
    id,
    update.accessToken,
    update.refreshToken,
    update.accessExpiresAt,
    update.email,
    update.name,
  ]);
}

/**
 * Ends a session for good, saying why: `reason` is what every later request with its cookie is
 * answered, so it says what to do next. The first reason stays when two requests end it at
 * once. The provider's tokens are dropped: nothing acts for the person any more.
 */
export async function endUserSession(db: Queryable, id: string, reason: string): Promise<void> {
  await db.query(
    `update backstop.user_sessions set ended_at = now(), end_reason = $2, access_token = null, refresh_token = null, access_expires_at = null
     where id = $1 and ended_at is null`,
    [id, reason],
  );
}
