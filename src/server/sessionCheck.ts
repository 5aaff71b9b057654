import { BackstopError } from '../core/errors.ts';
import type { ApiTokenRole } from '../core/roles.ts';
import type { Queryable } from '../db/pool.ts';
import { endUserSession, updateUserSession, type UserSession } from '../db/userSessions.ts';
import type { Identity, OidcClient } from './oidcClient.ts';

/**
 * Whether a signed-in person still has a role, asked of the provider at each request: the
 * userinfo endpoint with the session's access token (refreshed with its refresh token when it
 * expired), then BACKSTOP_OIDC_ROLE_MAP on the groups and address it answers. A person removed
 * from their group at the provider therefore loses that role at their next request, not at
 * the end of a session. An answer is reused for BACKSTOP_OIDC_RECHECK seconds (default 0:
 * never), and requests of one session that arrive together share one call. A session the
 * provider no longer accepts, or whose person no rule maps to a role any more, is ended with
 * the reason, which every later request with its cookie is answered (src/server/auth.ts).
 */
export interface SessionChecker {
  confirm(session: UserSession, options?: { maxAgeMs?: number }): Promise<Identity & { role: ApiTokenRole }>;
}

export function createSessionChecker(db: Queryable, client: OidcClient): SessionChecker {
  const answers = new Map<string, { at: number; identity: Promise<Identity> }>();

  const ask = async (session: UserSession): Promise<Identity> => {
    try {
      const { identity, tokens } = await client.currentIdentity(session.subject, session);
      if (tokens || identity.email !== session.email || identity.name !== session.name) {
        await updateUserSession(db, session.id, { ...(tokens ?? session), email: identity.email, name: identity.name });
      }
      return identity;
    } catch (error) {
      if (error instanceof BackstopError && error.code === 'SIGN_IN_FAILED') await endUserSession(db, session.id, error.message);
      throw error;
    }
  };

  return {
    async confirm(session, options = {}) {
      const maxAgeMs = options.maxAgeMs ?? client.settings.recheckMs;
      const now = Date.now();
      let entry = answers.get(session.id);
      // A settled answer older than maxAgeMs is asked again; one still in flight is shared.
      if (!entry || (entry.at >= 0 && now - entry.at > maxAgeMs)) {
        const pending = { at: -1, identity: ask(session) };
        answers.set(session.id, pending);
        pending.identity.then(
          () => {
            pending.at = Date.now();
            if (maxAgeMs === 0 && answers.get(session.id) === pending) answers.delete(session.id);
          },
          () => answers.get(session.id) === pending && answers.delete(session.id),
        );
        entry = pending;
      }
      if (answers.size > 10_000) for (const [id, old] of answers) if (old.at >= 0 && now - old.at > maxAgeMs) answers.delete(id);
      const identity = await entry.identity;
      if (identity.role === null) {
        const reason = `${identity.email ?? identity.subject} no longer has a Backstop role: none of the provider's groups or the address match BACKSTOP_OIDC_ROLE_MAP. Ask an admin to add you to a group that has one, then sign in again.`;
        // Kept with the session: a request of the same session that arrives after this one
        // ended it (the page's event stream and its API calls race) is told the same reason.
        await endUserSession(db, session.id, reason);
        throw new BackstopError('UNAUTHORIZED', reason);
      }
      return { ...identity, role: identity.role };
    },
  };
}
