import { setTimeout as sleep } from 'node:timers/promises';
import { BackstopError } from '../../core/errors.ts';
import { guardedFetch, OutboundAddressRefused } from '../../net/outboundGuard.ts';

export interface GithubTarget {
  owner: string;
  repo: string;
  workflow: string;
  ref: string;
}

export interface GithubRun {
  id: number;
  status: string | null;
  conclusion: string | null;
  htmlUrl: string;
  displayTitle: string;
}

export interface GithubClientOptions {
  /** https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server. */
  apiUrl: string;
  token: string;
  /** The longest a rate limit may hold one call before it gives up (and is retried later). */
  maxRateLimitWaitMs?: number;
  onRateLimited?: (waitMs: number) => void;
}

/** GitHub answered, and said no: the status and GitHub's own message. */
export class GithubRefusal extends BackstopError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('DISPATCH_REFUSED', `GitHub refused (${status}): ${message}`);
    this.status = status;
  }
}

const API_VERSION = '2022-11-28';

/**
 * The four calls Backstop makes to GitHub Actions, with GitHub's rate limits honoured:
 * `retry-after`, or `x-ratelimit-reset` when the primary limit is used up, waiting at most
 * `maxRateLimitWaitMs` per call.
 */
export function githubClient(options: GithubClientOptions) {
  const base = options.apiUrl.replace(/\/+$/, '');
  const maxWait = options.maxRateLimitWaitMs ?? 60_000;

  const request = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        // Through the outbound guard: BACKSTOP_GITHUB_API_URL can name a GitHub Enterprise
        // Server, and a private one must be allowed by BACKSTOP_ALLOW_PRIVATE_ENDPOINTS.
        response = await guardedFetch(`${base}${path}`, {
          method,
          headers: {
            accept: 'application/vnd.github+json',
            authorization: `Bearer ${options.token}`,
            'x-github-api-version': API_VERSION,
            'user-agent': 'backstop',
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (error) {
        const cause = (error as { cause?: unknown }).cause;
        const reason = cause instanceof OutboundAddressRefused ? cause.message : (error as Error).message;
        throw new BackstopError('GITHUB_UNAVAILABLE', `GitHub did not answer ${method} ${path}: ${reason}`, { cause: error });
      }
      const text = await response.text();
      const json = text ? safeJson(text) : null;
      const waitMs = rateLimitWait(response);
      if (waitMs !== null) {
        if (waitMs > maxWait || attempt >= 5) {
          throw new BackstopError('GITHUB_UNAVAILABLE', `GitHub rate limit: retry in ${Math.ceil(waitMs / 1000)} s (${messageOf(json) ?? response.status}).`);
        }
        options.onRateLimited?.(waitMs);
        await sleep(waitMs);
        continue;
      }
      if (response.status >= 500) {
        if (attempt >= 2) throw new BackstopError('GITHUB_UNAVAILABLE', `GitHub answered ${response.status} to ${method} ${path}: ${messageOf(json) ?? text.slice(0, 200)}`);
        await sleep(500 * 2 ** attempt);
        continue;
      }
      return { status: response.status, json };
    }
  };

  const repoPath = (target: GithubTarget) => `/repos/${encodeURIComponent(target.owner)}/${encodeURIComponent(target.repo)}`;

  return {
    /**
     * workflow_dispatch with `return_run_details`, which answers 200 with the run id and URL.
     * GitHub Enterprise Server 3.17–3.19 reject the field with 400: then dispatch again
     * without it (204, no body) and let the caller find the run by its run-name.
     */
    async dispatch(target: GithubTarget, inputs: Record<string, string>): Promise<{ workflowRunId: number; htmlUrl: string } | { workflowRunId: null }> {
      const path = `${repoPath(target)}/actions/workflows/${encodeURIComponent(target.workflow)}/dispatches`;
      let answer = await request('POST', path, { ref: target.ref, inputs, return_run_details: true });
      if (answer.status === 400 && /return_run_details/i.test(messageOf(answer.json) ?? '')) {
        answer = await request('POST', path, { ref: target.ref, inputs });
      }
      if (answer.status === 200) {
        const details = answer.json as { workflow_run_id: number; html_url: string };
        return { workflowRunId: details.workflow_run_id, htmlUrl: details.html_url };
      }
      if (answer.status === 204) return { workflowRunId: null };
      throw new GithubRefusal(answer.status, messageOf(answer.json) ?? 'no message');
    },

    async getRun(target: GithubTarget, runId: number): Promise<GithubRun> {
      const answer = await request('GET', `${repoPath(target)}/actions/runs/${runId}`);
      if (answer.status !== 200) throw new GithubRefusal(answer.status, messageOf(answer.json) ?? 'no message');
      return toRun(answer.json as RawRun);
    },

    /** 202: cancelling; 409: the run had already finished. */
    async cancelRun(target: GithubTarget, runId: number): Promise<'cancelling' | 'already_finished'> {
      const answer = await request('POST', `${repoPath(target)}/actions/runs/${runId}/cancel`);
      if (answer.status === 202) return 'cancelling';
      if (answer.status === 409) return 'already_finished';
      throw new GithubRefusal(answer.status, messageOf(answer.json) ?? 'no message');
    },

    /** The dispatched run whose run-name (display_title) contains `needle`, created since `since`. */
    async findRunByTitle(target: GithubTarget, needle: string, since: Date): Promise<GithubRun | null> {
      const created = `>=${new Date(since.getTime() - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
      const query = new URLSearchParams({ event: 'workflow_dispatch', created, per_page: '100' });
      const answer = await request('GET', `${repoPath(target)}/actions/workflows/${encodeURIComponent(target.workflow)}/runs?${query}`);
      if (answer.status !== 200) throw new GithubRefusal(answer.status, messageOf(answer.json) ?? 'no message');
      const runs = ((answer.json as { workflow_runs: RawRun[] }).workflow_runs ?? []).map(toRun);
      return runs.find((run) => run.displayTitle.includes(needle)) ?? null;
    },
  };
}

export type GithubClient = ReturnType<typeof githubClient>;

interface RawRun {
  id: number;
  status: string | null;
  conclusion: string | null;
  html_url: string;
  display_title: string;
}

function toRun(raw: RawRun): GithubRun {
  return { id: raw.id, status: raw.status, conclusion: raw.conclusion, htmlUrl: raw.html_url, displayTitle: raw.display_title };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 500) };
  }
}

function messageOf(json: unknown): string | null {
  return typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string' ? (json as { message: string }).message : null;
}

/** How long GitHub asks us to wait, or null when this answer is not a rate limit. */
function rateLimitWait(response: Response): number | null {
  if (response.status !== 403 && response.status !== 429) return null;
  const retryAfter = response.headers.get('retry-after');
  if (retryAfter !== null && Number.isFinite(Number(retryAfter))) return Number(retryAfter) * 1000;
  if (response.headers.get('x-ratelimit-remaining') === '0') {
    const reset = Number(response.headers.get('x-ratelimit-reset'));
    if (Number.isFinite(reset)) return Math.max(0, reset * 1000 - Date.now()) + 1000;
  }
  // Secondary limits without headers: GitHub says to wait at least a minute.
  if (response.status === 429) return 60_000;
  return null;
}
