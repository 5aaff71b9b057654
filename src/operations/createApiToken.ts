import { z } from 'zod';
import type { Queryable } from '../db/pool.ts';
import { apiTokenRoles, createApiToken as storeApiToken, type ApiTokenRecord } from '../db/tokens.ts';
import { parseInput } from '../core/inputProblems.ts';
import { tokenName } from './tokenName.ts';

export { apiTokenRoles, type ApiTokenRecord, type ApiTokenRole } from '../db/tokens.ts';

export const apiTokenRequest = z
  .strictObject({
    name: tokenName,
    role: z
      .enum(apiTokenRoles, { error: (issue) => `Unknown role "${String(issue.input).slice(0, 40)}". Use one of: ${apiTokenRoles.join(', ')}` })
      .describe('viewer reads; operator also triggers, cancels, verifies and restores; admin also manages targets and tokens.'),
    owner: z
      .string()
      .trim()
      .min(1, 'An owner names a person or a service, e.g. "alice@example.com" or "nightly-ci".')
      .max(200, 'An owner is at most 200 characters.')
      .optional()
      .describe('The person or service that holds the token, e.g. "alice@example.com" or "nightly-ci": shown in lists and in the records of what it did.'),
  })
  .meta({
    examples: [
      { name: 'dashboard', role: 'viewer' },
      { name: 'ci', role: 'operator', owner: 'nightly-ci' },
    ],
  });

export type ApiTokenRequest = z.input<typeof apiTokenRequest>;

/** Creates an API token; the returned `token` is the only time it exists outside its holder (the catalog keeps its SHA-256). */
export async function createApiToken(db: Queryable, request: ApiTokenRequest): Promise<ApiTokenRecord & { token: string }> {
  return storeApiToken(db, parseInput(apiTokenRequest, request));
}
