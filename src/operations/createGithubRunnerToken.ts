import { z } from 'zod';
import { createGithubRunnerToken as storeGithubRunnerToken, GITHUB_REPOSITORY, type GithubRunnerTokenRecord } from '../db/githubRunnerTokens.ts';
import type { AuditActor } from '../core/auditActor.ts';
import type { Queryable } from '../db/pool.ts';
import { parseInput } from '../core/inputProblems.ts';
import { audited } from './recordAudit.ts';
import { tokenName } from './tokenName.ts';

export const githubRunnerTokenRequest = z.strictObject({
  name: tokenName,
  repository: z.string().regex(GITHUB_REPOSITORY, 'must be a GitHub repository written OWNER/REPO, e.g. acme/infra'),
});

export type GithubRunnerTokenRequest = z.input<typeof githubRunnerTokenRequest>;

/**
 * Creates a repository's GitHub runner token (the secret its Backstop workflow keeps): its
 * jobs may claim only the runs Backstop dispatches to that repository, and report their
 * outcome. The returned `token` is the only time it exists outside its holder.
 */
export async function createGithubRunnerToken(db: Queryable, request: GithubRunnerTokenRequest, actor: AuditActor): Promise<GithubRunnerTokenRecord & { token: string }> {
  return audited(
    db,
    actor,
    {
      action: 'token.create',
      subject: null,
      subjectOf: (created) => created.id,
      detailsOf: (created) => ({ name: created.name, kind: 'github-runner', repository: created.repository }),
    },
    async () => storeGithubRunnerToken(db, parseInput(githubRunnerTokenRequest, request)),
  );
}
