import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Actor } from '../core/actor.ts';
import type { AuditActor } from '../core/auditActor.ts';
import type { AuditAction } from '../core/auditEntry.ts';
import { BackstopError } from '../core/errors.ts';
import { hasRole } from '../core/roles.ts';
import type { Queryable } from '../db/pool.ts';
import { assertRunDispatchedTo, authenticateGithubRunnerToken, GITHUB_RUNNER_TOKEN_PREFIX } from '../db/githubRunnerTokens.ts';
import { recordRefusal } from '../operations/recordAudit.ts';
import { authenticateApiToken, authenticateRunnerToken, RUNNER_TOKEN_PREFIX, type ApiTokenRole, type AuthenticatedApiToken } from '../db/tokens.ts';
import { findUserSession, findUserSessionEnd } from '../db/userSessions.ts';
import type { SignIn } from './signIn.ts';
import { assertSameSiteWrite, isSafeMethod } from './csrfCheck.ts';
import { readCookie } from './sessionCookies.ts';

export type Access = ApiTokenRole;
export type { Actor };

export type Principal =
  | { kind: 'api'; tokenId: string; name: string; role: ApiTokenRole; owner: string | null }
  | { kind: 'user'; sessionId: string; subject: string; email: string | null; name: string; provider: string; role: ApiTokenRole; csrfToken: string }
  | { kind: 'runner'; runId: string }
  | { kind: 'github'; tokenId: string; name: string; repository: string };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role that may call the route (default: admin). */
    access?: Access;
    /** A runner token scoped to the run in `:id` may call the route too. */
    runner?: boolean;
    /**
     * A runner token may still call the route for a short while after its run ended: calls
     * that answer the same after the end (a repeated finalize, the CI job's closing report).
     */
    runnerAfterEnd?: boolean;
    /** A GitHub runner token may call the route for a run in `:id` dispatched to its repository. */
    githubRunner?: boolean;
    /**
     * The audited action the route does: a token refused for its role is recorded as a refusal
     * of it (the operation, which records everything else, is never reached).
     */
    audit?: AuditAction;
  }
  interface FastifyRequest {
    principal?: Principal;
    /** Who made this request, for the records of who did what; set with `principal`. */
    actor?: Actor;
  }
}

function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (!header) {
    throw new BackstopError('UNAUTHORIZED', 'Missing API token: send `Authorization: Bearer <token>` (create one with `backstop token create`).');
  }
  const match = /^Bearer +([^\s]+) *$/i.exec(header);
  if (!match) throw new BackstopError('UNAUTHORIZED', 'Malformed Authorization header: use `Authorization: Bearer <token>`.');
  return match[1]!;
}

/** The role a route needs: its declared access; an unknown route any, an undeclared one admin. */
function requiredRole(request: FastifyRequest): Access {
  return request.routeOptions.config.access ?? (request.is404 ? 'viewer' : 'admin');
}

/**
 * A request carrying the session cookie of a person signed in with OpenID Connect. A write
 * must also pass the CSRF checks (src/server/csrfCheck.ts); then the provider confirms the
 * person's role (src/server/sessionCheck.ts) and the route's role is checked against it.
 */
async function authenticateSession(db: Queryable, signIn: SignIn, request: FastifyRequest, cookie: string): Promise<void> {
  const session = await findUserSession(db, cookie);
  if (!session) {
    // A session ended by another request (signed out elsewhere, or the provider's answer to a
    // concurrent request of the same page) says why, not only that it ended.
    const reason = await findUserSessionEnd(db, cookie);
    throw new BackstopError('UNAUTHORIZED', reason ?? 'Your sign-in has ended (signed out, or past its time). Sign in again.');
  }
  if (!isSafeMethod(request)) assertSameSiteWrite(request, signIn.settings.publicUrl, session.csrfToken);
  const identity = await signIn.checker.confirm(session);
  const name = identity.name ?? identity.email ?? identity.subject;
  request.principal = {
    kind: 'user',
    sessionId: session.id,
    subject: session.subject,
    email: identity.email,
    name,
    provider: session.provider,
    role: identity.role,
    csrfToken: session.csrfToken,
  };
  request.actor = { kind: 'user', subject: session.subject, email: identity.email, name: identity.name, provider: session.provider };
  const required = requiredRole(request);
  if (!hasRole(identity.role, required)) {
    await recordRoleRefusal(db, request);
    throw new BackstopError('FORBIDDEN', `This needs the ${required} role; ${name} has the ${identity.role} role (from BACKSTOP_OIDC_ROLE_MAP).`);
  }
}

/**
 * Authentication on every /api route, then the route's role: a bearer token (API, runner or
 * GitHub runner token), or else the session cookie of a person signed in to the dashboard.
 * Runs before the body is read or validated, so an unauthenticated caller learns nothing
 * about what the route accepts. A runner token opens only the runner routes of its own run.
 * A bearer token is never subject to the cookie's CSRF checks: a browser never sends one on
 * its own.
 */
export function installAuth(app: FastifyInstance, db: Queryable, signIn: SignIn | null): void {
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/api/')) return;
    const cookie = signIn && !request.headers.authorization ? readCookie(request, signIn.cookies.session) : undefined;
    if (signIn && cookie) return authenticateSession(db, signIn, request, cookie);
    const token = bearerToken(request);
    const config = request.routeOptions.config;
    if (token.startsWith(RUNNER_TOKEN_PREFIX)) {
      const runner = await authenticateRunnerToken(db, token);
      if (!runner) throw new BackstopError('UNAUTHORIZED', 'Unknown runner token (a newer token for this run replaces an older one).');
      // A runner token lives as long as its run: a leaked one is worth nothing once the run ended.
      if (runner.state === 'expired' || (runner.state === 'ended' && !config.runnerAfterEnd)) {
        throw new BackstopError(
          'UNAUTHORIZED',
          `The runner token of run ${runner.runId} has expired: the run ended (${runner.status}) or passed its deadline. Trigger a new run; it gets a new token.`,
        );
      }
      const runId = (request.params as { id?: unknown } | undefined)?.id;
      if (!config.runner || request.is404 || runId !== runner.runId) {
        throw new BackstopError('FORBIDDEN', `A runner token only lets its runner claim, heartbeat, report progress, finalize, release, report and add events to run ${runner.runId}.`);
      }
      request.principal = { kind: 'runner', runId: runner.runId };
      request.actor = { kind: 'runner', runId: runner.runId };
      return;
    }
    if (token.startsWith(GITHUB_RUNNER_TOKEN_PREFIX)) {
      const holder = await authenticateGithubRunnerToken(db, token);
      if (!holder) {
        throw new BackstopError(
          'UNAUTHORIZED',
          'Unknown or revoked GitHub runner token. Create one with `backstop token create --name NAME --github OWNER/REPO` and store it as the repository secret BACKSTOP_RUNNER_TOKEN.',
        );
      }
      const runId = (request.params as { id?: unknown } | undefined)?.id;
      if (!config.githubRunner || request.is404 || typeof runId !== 'string') {
        throw new BackstopError('FORBIDDEN', `A GitHub runner token only lets a job of ${holder.repository} claim the run dispatched to it and report the job's outcome.`);
      }
      await assertRunDispatchedTo(db, runId, holder.repository);
      request.principal = { kind: 'github', tokenId: holder.id, name: holder.name, repository: holder.repository };
      request.actor = { kind: 'token', tokenKind: 'github-runner', tokenId: holder.id, name: holder.name, owner: holder.repository };
      return;
    }
    const apiToken = await authenticateApiToken(db, token);
    if (!apiToken) throw new BackstopError('UNAUTHORIZED', 'Unknown or revoked API token. Create a new one with `backstop token create`.');
    // An unknown route answers 404 to any valid token; a route that forgot to declare its
    // access is admin-only rather than open.
    const required = requiredRole(request);
    request.principal = { kind: 'api', tokenId: apiToken.id, name: apiToken.name, role: apiToken.role, owner: apiToken.owner };
    request.actor = { kind: 'token', tokenKind: 'api', tokenId: apiToken.id, name: apiToken.name, owner: apiToken.owner };
    if (!hasRole(apiToken.role, required)) {
      await recordRoleRefusal(db, request);
      throw new BackstopError('FORBIDDEN', `This needs the ${required} role; token "${apiToken.name}" has the ${apiToken.role} role.`);
    }
  });
}

/**
 * The API token of a request outside /api (`/metrics` on a server reachable beyond loopback):
 * any live API token, whatever its role.
 */
export async function requireApiToken(db: Queryable, request: FastifyRequest, what: string): Promise<AuthenticatedApiToken> {
  const match = /^Bearer +([^\s]+) *$/i.exec(request.headers.authorization ?? '');
  const apiToken = match ? await authenticateApiToken(db, match[1]!) : null;
  if (!apiToken) {
    throw new BackstopError(
      'UNAUTHORIZED',
      `${what} needs an API token (any role; a viewer token is enough): send \`Authorization: Bearer <token>\` (create one with \`backstop token create --role viewer\`).`,
    );
  }
  return apiToken;
}

/**
 * How stale a person's confirmed role may be for an open event stream, which asks at every
 * poll: at most this long after their removal from a group at the provider, the stream ends.
 */
const STREAM_RECHECK_MS = 5_000;

/**
 * Whether the API token a request was authenticated with is still live (not revoked), or the
 * person signed in still has a role, for long-lived responses (event streams) that must stop
 * when it is revoked.
 */
export async function stillAuthenticated(db: Queryable, signIn: SignIn | null, request: FastifyRequest): Promise<boolean> {
  const principal = request.principal;
  if (principal?.kind === 'user' && signIn) {
    const cookie = readCookie(request, signIn.cookies.session);
    const session = cookie ? await findUserSession(db, cookie) : null;
    if (session?.id !== principal.sessionId) return false;
    // Fails closed: a provider that cannot be asked ends the stream too; the reconnect says why.
    return signIn.checker.confirm(session, { maxAgeMs: Math.max(STREAM_RECHECK_MS, signIn.settings.recheckMs) }).then(
      () => true,
      () => false,
    );
  }
  if (principal?.kind !== 'api') return false;
  const match = /^Bearer +([^\s]+) *$/i.exec(request.headers.authorization ?? '');
  if (!match) return false;
  const apiToken = await authenticateApiToken(db, match[1]!);
  return apiToken?.id === principal.tokenId;
}

/** The role of a request's API token or signed-in person, or null for anything else (what src/core/actions.ts decides with). */
export function roleOf(request: FastifyRequest): ApiTokenRole | null {
  const principal = request.principal;
  return principal?.kind === 'api' || principal?.kind === 'user' ? principal.role : null;
}

/**
 * A person or token refused for its role never reaches the operation, which records
 * everything else: the route's declared action is recorded as refused here. The refusal is
 * the answer even when it cannot be recorded.
 */
async function recordRoleRefusal(db: Queryable, request: FastifyRequest): Promise<void> {
  const action = request.routeOptions.config.audit;
  if (action) await recordRefusal(db, requestActor(request), action, subjectOf(request), 'FORBIDDEN').catch(() => {});
}

/** What a route acts on, from its path: a target's name, a run's or a token's id. */
function subjectOf(request: FastifyRequest): string | null {
  const params = request.params as { name?: unknown; id?: unknown } | undefined;
  const subject = params?.name ?? params?.id;
  return typeof subject === 'string' ? subject.slice(0, 200) : null;
}

/** The header the dashboard's pages send with their API calls, so the audit trail says "dashboard". */
export const DASHBOARD_CLIENT_HEADER = 'x-backstop-client';

/**
 * Who made a request, for the operations and the audit trail: the person signed in (their
 * subject, e-mail or name, and role) or the API token (its id, name and role), and the
 * client's address. The address is the peer of the connection: behind a reverse proxy, the
 * proxy's. Only people and API tokens act on targets, runs and tokens.
 */
export function requestActor(request: FastifyRequest): AuditActor {
  const principal = request.principal;
  const client = principal?.kind === 'user' || request.headers[DASHBOARD_CLIENT_HEADER] === 'dashboard' ? 'dashboard' : 'api';
  if (principal?.kind === 'user') {
    return { kind: 'user', id: principal.subject, name: principal.email ?? principal.name, role: principal.role, address: request.ip, client };
  }
  if (principal?.kind !== 'api') throw new BackstopError('FORBIDDEN', 'Only people signed in and API tokens act on targets, runs and tokens.');
  return { kind: 'token', id: principal.tokenId, name: principal.name, role: principal.role, address: request.ip, client };
}

/** Who did it, for event messages and logs (from `request.actor`): a name, never a token. */
export function actorOf(request: FastifyRequest): string {
  const actor = request.actor;
  if (!actor) return 'anonymous';
  if (actor.kind === 'user') return `user ${actor.email ?? actor.name ?? actor.subject}`;
  if (actor.kind === 'runner') return `runner of run ${actor.runId}`;
  return actor.tokenKind === 'api' ? `token "${actor.name}"` : `GitHub runner token "${actor.name}" of ${actor.owner}`;
}
