import { revokeGithubRunnerToken, type GithubRunnerTokenRecord } from '../db/githubRunnerTokens.ts';
import type { AuditActor } from '../core/auditActor.ts';
import type { Queryable } from '../db/pool.ts';
import { revokeApiToken, type ApiTokenRecord } from '../db/tokens.ts';
import { audited } from './recordAudit.ts';

export type RevokedToken = { kind: 'api'; token: ApiTokenRecord } | { kind: 'github-runner'; token: GithubRunnerTokenRecord };

/**
 * Revokes a token by id: requests made with it are refused from now on; revoking twice is no
 * error. An API token, or with `githubRunnerTokens` a GitHub runner token too (the CLI manages
 * both, the API's tokens route API tokens). TOKEN_NOT_FOUND otherwise.
 */
export async function revokeToken(db: Queryable, id: string, options: { githubRunnerTokens: boolean }, actor: AuditActor): Promise<RevokedToken> {
  return audited(db, actor, { action: 'token.revoke', subject: id, detailsOf: (revoked) => ({ kind: revoked.kind, name: revoked.token.name }) }, async (): Promise<RevokedToken> => {
    const runner = options.githubRunnerTokens ? await revokeGithubRunnerToken(db, id) : null;
    if (runner) return { kind: 'github-runner', token: runner };
    return { kind: 'api', token: await revokeApiToken(db, id) };
  });
}
