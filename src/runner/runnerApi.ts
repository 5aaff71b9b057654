import { BackstopError, errorCodes, type ErrorCode } from '../core/errors.ts';
import type { ReportedProgress } from '../core/runProgress.ts';
import type { LeaseState } from '../db/runLeases.ts';

/**
 * One request to Backstop's runner routes, with a timeout, and every failure turned into a
 * BackstopError that says what to check: the same codes the SQL runner meets (LEASE_LOST,
 * RUN_NOT_FOUND…), plus UNAUTHORIZED / FORBIDDEN for the token and CATALOG_UNAVAILABLE when
 * the API cannot be reached or answers 5xx (the cases a caller may retry).
 */

export interface RunnerApiEndpoint {
  /** The server's base URL, e.g. https://backstop.example.com. */
  apiUrl: string;
  token: string;
  timeoutMs: number;
}

// Failures before any byte reached the server: the request certainly did nothing.
const connectFailures = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);
const undelivered = new WeakSet<Error>();

/**
 * Whether the request surely had no effect: the connection was refused or the catalog behind
 * the API was unavailable (503). Only then is a non-idempotent request (a claim) worth repeating.
 */
export function isUndelivered(error: unknown): boolean {
  return error instanceof Error && undelivered.has(error);
}

/** Whether the failure may pass by itself: the API unreachable, slow or failing (5xx). */
export function isTransient(error: unknown): boolean {
  return error instanceof BackstopError && error.code === 'CATALOG_UNAVAILABLE';
}

function originOf(apiUrl: string): string {
  try {
    return new URL(apiUrl).origin;
  } catch {
    return 'the configured address';
  }
}

function causeCode(error: unknown): string | undefined {
  for (let current = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; current && depth < 4; current = current.cause as typeof current, depth++) {
    if (typeof current.code === 'string') return current.code;
  }
  return undefined;
}

function unreachable(endpoint: RunnerApiEndpoint, error: unknown): BackstopError {
  const timedOut = (error as Error)?.name === 'TimeoutError';
  const code = causeCode(error);
  const reason = timedOut ? `no answer within ${endpoint.timeoutMs} ms` : (code ?? (error as Error)?.message ?? String(error));
  const failure = new BackstopError(
    'CATALOG_UNAVAILABLE',
    `Cannot reach the Backstop API at ${originOf(endpoint.apiUrl)} (${reason}). Check BACKSTOP_API_URL (or --api-url): it must be the address of a running \`backstop server\` that this machine can reach (host, port, http/https, firewall, proxy).`,
    { cause: error },
  );
  if (!timedOut && code && connectFailures.has(code)) undelivered.add(failure);
  return failure;
}

function refusal(endpoint: RunnerApiEndpoint, method: string, path: string, status: number, body: unknown): BackstopError {
  const origin = originOf(endpoint.apiUrl);
  const sent = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const message = typeof sent?.message === 'string' ? sent.message : '';
  const code = typeof sent?.code === 'string' && sent.code in errorCodes ? (sent.code as ErrorCode) : undefined;
  if (status === 401) {
    return new BackstopError('UNAUTHORIZED', `The Backstop API at ${origin} refused the runner token: ${message || 'unauthorized.'} Check BACKSTOP_RUNNER_TOKEN (or --token).`);
  }
  if (status === 403) {
    return new BackstopError('FORBIDDEN', `The Backstop API at ${origin} refused this token for ${method} ${path}: ${message || 'forbidden'}`);
  }
  if (status >= 500) {
    const failure = new BackstopError('CATALOG_UNAVAILABLE', `The Backstop API at ${origin} failed (${status}${message ? `: ${message}` : ''}).`);
    if (status === 503) undelivered.add(failure);
    return failure;
  }
  if (!code) {
    return new BackstopError(
      'INTERNAL',
      `The Backstop API at ${origin} answered ${method} ${path} with ${status} and no Backstop error: is BACKSTOP_API_URL (or --api-url) the base URL of a Backstop server?`,
    );
  }
  if (code === 'NOT_FOUND') {
    return new BackstopError(
      'NOT_FOUND',
      `The Backstop API at ${origin} has no ${method} ${path} (${message}). Check BACKSTOP_API_URL (or --api-url): the server's base URL, without /api/v1, of a server at least as new as this runner.`,
    );
  }
  return new BackstopError(code, message || `refused with ${status}`);
}

/** Sends one request; resolves with the parsed JSON answer (undefined for 204). */
export async function callRunnerApi<T>(endpoint: RunnerApiEndpoint, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const url = `${endpoint.apiUrl.replace(/\/+$/, '')}${path}`;
  let status: number;
  let text: string;
  try {
    const response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${endpoint.token}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(endpoint.timeoutMs),
    });
    status = response.status;
    text = await response.text();
  } catch (error) {
    throw unreachable(endpoint, error);
  }
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (status >= 200 && status < 300) return json as T;
  throw refusal(endpoint, method, path, status, json);
}

/**
 * The heartbeat over HTTP. Null means the lease is lost: 409 LEASE_LOST, the run is gone, or
 * 401 (the run's token no longer opens it: the run ended, or a newer token replaced this one).
 */
export async function renewLeaseOverHttp(endpoint: RunnerApiEndpoint, input: { runId: string; leaseId: string; progress?: Record<string, unknown> | null }): Promise<LeaseState | null> {
  try {
    return await callRunnerApi<LeaseState>(endpoint, 'POST', `/api/v1/runs/${encodeURIComponent(input.runId)}/heartbeat`, {
      leaseId: input.leaseId,
      progress: input.progress ?? null,
    });
  } catch (error) {
    if (error instanceof BackstopError && (error.code === 'LEASE_LOST' || error.code === 'RUN_NOT_FOUND' || error.code === 'UNAUTHORIZED')) return null;
    throw error;
  }
}

/**
 * Progress between heartbeats, over HTTP (see reportRunProgress). False when the lease no
 * longer holds the run; the heartbeat decides what that means.
 */
export async function reportProgressOverHttp(endpoint: RunnerApiEndpoint, input: { runId: string; leaseId: string; progress: ReportedProgress }): Promise<boolean> {
  try {
    await callRunnerApi(endpoint, 'POST', `/api/v1/runs/${encodeURIComponent(input.runId)}/progress`, { leaseId: input.leaseId, progress: input.progress });
    return true;
  } catch (error) {
    if (error instanceof BackstopError && (error.code === 'LEASE_LOST' || error.code === 'RUN_NOT_FOUND' || error.code === 'UNAUTHORIZED')) return false;
    throw error;
  }
}
