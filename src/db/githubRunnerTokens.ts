import { BackstopError } from '../core/errors.ts';
import type { Queryable } from './pool.ts';
import { assertRunId } from './runRecords.ts';
import { hashToken, looksLikeToken, newToken } from './tokens.ts';

/**
 * GitHub runner tokens: the long-lived secret a repository keeps for its Backstop workflow.
 * A job holding one may claim a run Backstop dispatched to that repository (and gets the run's
 * own runner token in exchange) and report its job's outcome; it cannot read or change
 * anything else. Workflow inputs are public (the run's page, the event payload), so the run
 * id travels there and the credential never does.
 */

export const GITHUB_RUNNER_TOKEN_PREFIX = 'bsg_';
export const GITHUB_REPOSITORY = /^[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9._-]{1,100}$/;

export interface GithubRunnerTokenRecord {
  id: string;
  name: string;
  repository: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

interface Row {
  id: string;
  name: string;
  repository: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

const columns = 'id, name, repository, created_at, last_used_at, revoked_at';

function toRecord(row: Row): GithubRunnerTokenRecord {
  return { id: row.id, name: row.name, repository: row.repository, createdAt: row.created_at, lastUsedAt: row.last_used_at, revokedAt: row.revoked_at };
}

/**
 * Creates a token for one repository; the returned `token` is the only time it exists outside
 * its holder. The name and repository were checked by the operation that asked
 * (src/operations/createGithubRunnerToken.ts).
 */
export async function createGithubRunnerToken(db: Queryable, input: { name: string; repository: string }): Promise<GithubRunnerTokenRecord & { token: string }> {
  const token = newToken(GITHUB_RUNNER_TOKEN_PREFIX);
  const { rows } = await db.query<Row>(`insert into backstop.github_runner_tokens (name, repository, token_hash) values ($1, $2, $3) returning ${columns}`, [
    input.name,
    input.repository,
    hashToken(token),
  ]);
  return { ...toRecord(rows[0]!), token };
}

export async function listGithubRunnerTokens(db: Queryable): Promise<GithubRunnerTokenRecord[]> {
  const { rows } = await db.query<Row>(`select ${columns} from backstop.github_runner_tokens order by created_at, id`);
  return rows.map(toRecord);
}

/** Revokes a token; null when no GitHub runner token has this id. Revoking twice keeps the first time. */
export async function revokeGithubRunnerToken(db: Queryable, id: string): Promise<GithubRunnerTokenRecord | null> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return null;
  const { rows } = await db.query<Row>(`update backstop.github_runner_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1 returning ${columns}`, [id]);
  return rows[0] ? toRecord(rows[0]) : null;
}

export interface AuthenticatedGithubRunner {
  id: string;
  name: string;
  repository: string;
}

/** The live token with this value, or null. `last_used_at` is refreshed at most once a minute. */
export async function authenticateGithubRunnerToken(db: Queryable, token: string): Promise<AuthenticatedGithubRunner | null> {
  if (!looksLikeToken(token, GITHUB_RUNNER_TOKEN_PREFIX)) return null;
  const { rows } = await db.query<{ id: string; name: string; repository: string; stale: boolean }>(
    `select id, name, repository, (last_used_at is null or last_used_at < now() - interval '1 minute') as stale
     from backstop.github_runner_tokens where token_hash = $1 and revoked_at is null`,
    [hashToken(token)],
  );
  const row = rows[0];
  if (!row) return null;
  if (row.stale) {
    // Best effort: bookkeeping must not fail the request it belongs to.
    db.query(`update backstop.github_runner_tokens set last_used_at = now() where id = $1`, [row.id]).catch(() => {});
  }
  return { id: row.id, name: row.name, repository: row.repository };
}

/**
 * Refuses unless `runId` was handed to GitHub Actions (it has a GitHub executor record) for a
 * target whose workflow lives in `repository`. An unknown run is RUN_NOT_FOUND: the job was
 * given a wrong id, and saying so helps more than a bare refusal.
 */
export async function assertRunDispatchedTo(db: Queryable, runId: string, repository: string): Promise<void> {
  assertRunId(runId);
  const { rows } = await db.query<{ dispatched: boolean; owner: string | null; repo: string | null }>(
    `select r.executor->>'kind' = 'github' as dispatched, t.executor_config->>'owner' as owner, t.executor_config->>'repo' as repo
     from backstop.runs r join backstop.targets t on t.id = r.target_id
     where r.id = $1 and t.executor_config->>'kind' = 'github'`,
    [runId],
  );
  const row = rows[0];
  if (!row) {
    const { rowCount } = await db.query('select 1 from backstop.runs where id = $1', [runId]);
    if (!rowCount) throw new BackstopError('RUN_NOT_FOUND', `No run with id ${runId}. The job must be given the run id Backstop dispatched (inputs.run_id).`);
  }
  if (!row?.dispatched || `${row.owner}/${row.repo}`.toLowerCase() !== repository.toLowerCase()) {
    throw new BackstopError(
      'FORBIDDEN',
      `Run ${runId} was not dispatched to ${repository}: this GitHub runner token only opens runs that Backstop dispatched to that repository's workflow.`,
    );
  }
}
