import { listGithubRunnerTokens, type GithubRunnerTokenRecord } from '../db/githubRunnerTokens.ts';
import type { Queryable } from '../db/pool.ts';
import { listApiTokens, type ApiTokenRecord } from '../db/tokens.ts';

/** Every API token and GitHub runner token, revoked ones included; never their values. */
export async function listTokens(db: Queryable): Promise<{ apiTokens: ApiTokenRecord[]; githubRunnerTokens: GithubRunnerTokenRecord[] }> {
  return { apiTokens: await listApiTokens(db), githubRunnerTokens: await listGithubRunnerTokens(db) };
}
