import { randomBytes } from 'node:crypto';
import type { Queryable } from './pool.ts';
import { hashToken } from './tokens.ts';

/**
 * Dashboard sign-ins (migration 018). The cookie value and the sign-in state are random and
 * looked up by their SHA-256, as API tokens are: a copy of the catalog opens no session.
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

const COLUMNS = 'id, csrf_token, provider, subject, email, name, access_token, refresh_token, access_expires_at';

/** Opens a session; the returned `cookie` is its only copy outside the browser. */
export async function createUserSession(
  db: Queryable,
  input: { provider: string; subject: string; email: string | null; name: string | null; tokens: ProviderTokens; ttlMs: number },
): Promise<{ session: UserSession; cookie: string }> {
  const cookie = randomBytes(32).toString('base64url');
  const csrfToken = randomBytes(32).toString('base64url');
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
  if (!/^[A-Za-z0-9_-]{43}$/.test(cookie)) return null;
  const { rows } = await db.query<UserSessionRow>(`select ${COLUMNS} from backstop.user_sessions where cookie_hash = $1 and expires_at > now()`, [hashToken(cookie)]);
  return rows[0] ? toSession(rows[0]) : null;
}

/** Keeps the tokens a refresh returned, and the person's current name and address. */
export async function updateUserSession(db: Queryable, id: string, update: ProviderTokens & { email: string | null; name: string | null }): Promise<void> {
  await db.query(`update backstop.user_sessions set access_token = $2, refresh_token = $3, access_expires_at = $4, email = $5, name = $6 where id = $1`, [
    id,
    update.accessToken,
    update.refreshToken,
    update.accessExpiresAt,
    update.email,
    update.name,
  ]);
}

export async function deleteUserSession(db: Queryable, id: string): Promise<void> {
  await db.query(`delete from backstop.user_sessions where id = $1`, [id]);
}
