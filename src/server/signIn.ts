import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { OidcConfig } from '../core/config.ts';
import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import { createUserSession, endUserSession, findUserSession, saveSignInAttempt, takeSignInAttempt } from '../db/userSessions.ts';
import { recordSignIn } from '../operations/recordAudit.ts';
import { assertSameSiteWrite } from './csrfCheck.ts';
import { createOidcClient, type OidcClient } from './oidcClient.ts';
import { securityHeaders } from './securityHeaders.ts';
import { createSessionChecker, type SessionChecker } from './sessionCheck.ts';
import { cookieNames, readCookie, setCookie, type CookieNames } from './sessionCookies.ts';

/**
 * Signing in to the dashboard with OpenID Connect, outside /api (so no token is asked):
 *
 * - `GET /auth/options`: whether sign-in is configured, and the provider's name, for the page;
 * - `GET /auth/login`: a new attempt (state, nonce, PKCE verifier kept in the catalog, the state
 *   in a cookie too), then a redirect to the provider;
 * - `GET /auth/callback`: the provider's answer, checked by openid-client; the person gets a
 *   session cookie if BACKSTOP_OIDC_ROLE_MAP gives them a role, a page that says why not if not;
 * - `POST /auth/logout`: ends the session (same CSRF checks as any cookie write).
 */

export interface SignIn {
  settings: OidcConfig;
  client: OidcClient;
  checker: SessionChecker;
  cookies: CookieNames;
}

export function createSignIn(db: Queryable, settings: OidcConfig): SignIn {
  const client = createOidcClient(settings);
  return { settings, client, checker: createSessionChecker(db, client), cookies: cookieNames(settings) };
}

const SIGN_IN_ATTEMPT_SECONDS = 600;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

/** A page of its own for what the dashboard cannot show: the sign-in did not give access. */
function sendPage(reply: FastifyReply, status: number, title: string, message: string): FastifyReply {
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Backstop</title><link rel="stylesheet" href="/ui/app.css"></head>
<body><main id="main" class="login"><h1 id="page-title">${escapeHtml(title)}</h1>
<p class="notice notice-error" role="alert">${escapeHtml(message)}</p>
<p><a href="/auth/login">Sign in again</a> · <a href="/">Back to Backstop</a></p></main></body></html>`;
  return reply
    .code(status)
    .headers({ ...securityHeaders, 'content-security-policy': "default-src 'none'; style-src 'self'; frame-ancestors 'none'", 'cache-control': 'no-store' })
    .type('text/html; charset=utf-8')
    .send(page);
}

export function registerSignInRoutes(app: FastifyInstance, db: Queryable, signIn: SignIn | null): void {
  app.get('/auth/options', { schema: { hide: true } }, async () => ({ oidc: signIn ? { providerName: signIn.settings.providerName } : null }));
  if (!signIn) return;
  const { client, cookies, settings } = signIn;

  app.get('/auth/login', { schema: { hide: true } }, async (request, reply) => {
    let attempt: Awaited<ReturnType<OidcClient['beginSignIn']>>;
    try {
      attempt = await client.beginSignIn();
    } catch (error) {
      request.log.warn({ err: error }, 'sign-in could not start');
      return sendPage(reply, 502, 'Sign-in unavailable', (error as Error).message);
    }
    await saveSignInAttempt(db, attempt.state, { nonce: attempt.nonce, codeVerifier: attempt.codeVerifier });
    setCookie(reply, cookies, cookies.signIn, attempt.state, SIGN_IN_ATTEMPT_SECONDS);
    return reply.header('cache-control', 'no-store').redirect(attempt.url, 302);
  });

  app.get('/auth/callback', { schema: { hide: true } }, async (request, reply) => {
    const callbackUrl = new URL(client.redirectUri);
    callbackUrl.search = new URL(request.url, 'http://callback.invalid').search;
    const state = callbackUrl.searchParams.get('state') ?? '';
    // The state must be the one this browser was given: a callback link made in another
    // browser (someone signing you in as themselves) finds no match here.
    const expected = readCookie(request, cookies.signIn);
    setCookie(reply, cookies, cookies.signIn, '', 0);
    const attempt = expected && expected === state ? await takeSignInAttempt(db, state) : null;
    if (!attempt) {
      return sendPage(reply, 400, 'Sign-in not completed', 'This sign-in was not started in this browser, was already used, or took more than ten minutes. Sign in again.');
    }
    let result: Awaited<ReturnType<OidcClient['finishSignIn']>>;
    try {
      result = await client.finishSignIn(callbackUrl, { state, ...attempt });
    } catch (error) {
      const message = error instanceof BackstopError ? error.message : 'The sign-in could not be completed.';
      request.log.warn({ err: error }, 'sign-in failed');
      return sendPage(reply, error instanceof BackstopError && error.code === 'IDENTITY_PROVIDER_UNAVAILABLE' ? 502 : 400, 'Sign-in failed', message);
    }
    const { identity, tokens } = result;
    const who = identity.email ?? identity.name ?? identity.subject;
    const actor = { kind: 'user', id: identity.subject, name: who, role: identity.role ?? null, address: request.ip, client: 'dashboard' } as const;
    if (!identity.role) {
      await recordSignIn(db, actor, { errorCode: 'FORBIDDEN', method: 'oidc' });
      request.log.info({ subject: identity.subject, email: identity.email, groups: identity.groups }, 'sign-in refused: no role');
      return sendPage(
        reply,
        403,
        'No access',
        `You signed in as ${who}, but Backstop gives this account no role: none of its groups${identity.groups.length > 0 ? ` (${identity.groups.join(', ')})` : ''} or its address matches BACKSTOP_OIDC_ROLE_MAP. Ask a Backstop admin to add you to a group that has a role.`,
      );
    }
    const { session, cookie } = await createUserSession(db, {
      provider: settings.issuer,
      subject: identity.subject,
      email: identity.email,
      name: identity.name,
      tokens,
      ttlMs: settings.sessionTtlMs,
    });
    await recordSignIn(db, actor, { method: 'oidc' });
    request.log.info({ sessionId: session.id, subject: identity.subject, email: identity.email, role: identity.role }, 'signed in');
    setCookie(reply, cookies, cookies.session, cookie, Math.floor(settings.sessionTtlMs / 1000));
    return reply.header('cache-control', 'no-store').redirect('/', 302);
  });

  app.post('/auth/logout', { schema: { hide: true } }, async (request: FastifyRequest, reply) => {
    const cookie = readCookie(request, cookies.session);
    const session = cookie ? await findUserSession(db, cookie) : null;
    // Signing out is a write: a page of another site must not be able to sign you out either.
    if (session) {
      assertSameSiteWrite(request, settings.publicUrl, session.csrfToken);
      await endUserSession(db, session.id, 'You signed out of Backstop in this browser. Sign in again to continue.');
      request.log.info({ sessionId: session.id, subject: session.subject }, 'signed out');
    }
    setCookie(reply, cookies, cookies.session, '', 0);
    return reply.code(204).send();
  });
}
