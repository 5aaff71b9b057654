import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Actor } from '../core/actor.ts';
import type { AuditAction } from '../core/auditEntry.ts';
import { BackstopError } from '../core/errors.ts';
import { hasRole } from '../core/roles.ts';
import type { Queryable } from '../db/pool.ts';
import { assertRunDispatchedTo, authenticateGithubRunnerToken, GITHUB_RUNNER_TOKEN_PREFIX } from '../db/githubRunnerTokens.ts';
import { recordRefusal } from '../operations/recordAudit.ts';
import { authenticateApiToken, authenticateRunnerToken, RUNNER_TOKEN_PREFIX, type ApiTokenRole, type AuthenticatedApiToken } from '../db/tokens.ts';

export type Access = ApiTokenRole;

export type Principal =
  | { kind: 'api'; tokenId: string; name: string; role: ApiTokenRole }
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

/**
 * Bearer authentication on every /api route, then the route's role. Runs before the body is
 * read or validated, so an unauthenticated caller learns nothing about what the route accepts.
 * A runner token opens only the runner routes of its own run.
 */
export function installAuth(app: FastifyInstance, db: Queryable): void {
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/api/')) return;
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
      return;
    }
    const apiToken = await authenticateApiToken(db, token);
    if (!apiToken) throw new BackstopError('UNAUTHORIZED', 'Unknown or revoked API token. Create a new one with `backstop token create`.');
    // An unknown route answers 404 to any valid token; a route that forgot to declare its
    // access is admin-only rather than open.
    const required: Access = config.access ?? (request.is404 ? 'viewer' : 'admin');
    request.principal = { kind: 'api', tokenId: apiToken.id, name: apiToken.name, role: apiToken.role };
    if (!hasRole(apiToken.role, required)) {
      // The refusal is the answer even when it cannot be recorded.
      if (config.audit) await recordRefusal(db, requestActor(request), config.audit, subjectOf(request), 'FORBIDDEN').catch(() => {});
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
 * Whether the API token a request was authenticated with is still live (not revoked), for
 * long-lived responses (event streams) that must stop when it is revoked.
 */
export async function stillAuthenticated(db: Queryable, request: FastifyRequest): Promise<boolean> {
  const principal = request.principal;
  if (principal?.kind !== 'api') return false;
  const match = /^Bearer +([^\s]+) *$/i.exec(request.headers.authorization ?? '');
  if (!match) return false;
  const apiToken = await authenticateApiToken(db, match[1]!);
  return apiToken?.id === principal.tokenId;
}

/** The API token role of a request, or null for anything else (what src/core/actions.ts decides with). */
export function roleOf(request: FastifyRequest): ApiTokenRole | null {
  return request.principal?.kind === 'api' ? request.principal.role : null;
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
 * Who made a request, for the operations and the audit trail: the API token (its id, name and
 * role) and the client's address. The address is the peer of the connection: behind a
 * reverse proxy, the proxy's. Only API tokens act on targets, runs and tokens.
 */
export function requestActor(request: FastifyRequest): Actor {
  const principal = request.principal;
  if (principal?.kind !== 'api') throw new BackstopError('FORBIDDEN', 'Only API tokens act on targets, runs and tokens.');
  const client = request.headers[DASHBOARD_CLIENT_HEADER] === 'dashboard' ? 'dashboard' : 'api';
  return { kind: 'token', id: principal.tokenId, name: principal.name, role: principal.role, address: request.ip, client };
}

/** Who did it, for event messages: a token name, never a token. */
export function actorOf(request: FastifyRequest): string {
  const principal = request.principal;
  if (!principal) return 'anonymous';
  if (principal.kind === 'api') return `token "${principal.name}"`;
  if (principal.kind === 'github') return `GitHub runner token "${principal.name}" of ${principal.repository}`;
  return `runner of run ${principal.runId}`;
}
