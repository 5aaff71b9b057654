import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { JobStatus } from '../core/jobStatus.ts';
import { BackstopError, isBackstopError } from '../core/errors.ts';
import type { ClaimedRun, RunRecord } from '../db/runRecords.ts';
import type { TargetOptions } from '../db/targets.ts';
import { callRunnerApi, isTransient, isUndelivered, renewLeaseOverHttp, reportProgressOverHttp, type RunnerApiEndpoint } from './runnerApi.ts';
import type { HeartbeatChannel, RunnerCatalog, RunnerTarget } from './runnerCatalog.ts';

export interface HttpRunnerOptions {
  /** The server's base URL, e.g. https://backstop.example.com. */
  apiUrl: string;
  /** A GitHub runner token (exchanged at claim for the run's own token), a run's runner token, or an operator token. */
  token: string;
  /** The database URL of a target, from this runner's own environment: the API never sends one. */
  sourceUrl: (targetName: string) => string;
  /** Per request (default 10 s); calls made under a lease use at most half the lease. */
  timeoutMs?: number;
  /** Pauses between attempts of a claim or report the API surely did not receive (default 0.5, 1, 2 s). */
  retryDelaysMs?: number[];
  log: Logger;
}

export interface RemoteClaim {
  run: ClaimedRun;
  /** The server's lease settings: they, not this process's, decide when the run is reaped. */
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
}

export interface HttpRunner {
  /** Claims the run; with a GitHub runner token, every later call uses the run's own token. */
  claim(runId: string, claimedBy: string): Promise<RemoteClaim>;
  /** The `if: always()` step: ends the run with the job's status unless it already ended. */
  report(runId: string, jobStatus: JobStatus): Promise<{ ended: boolean; run: RunRecord }>;
  /** The runner's port to the catalog, over the API. */
  catalog: RunnerCatalog;
}

interface ClaimAnswer {
  leaseId: string;
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
  run: RunRecord;
  /** `continuous`: absent from servers older than continuous backup. */
  target: { id: string; name: string; storeUrl: string; options: TargetOptions; continuous?: { slot: string } | null };
  /** Absent from servers older than live progress. */
  previousBackupBytes?: number | null;
  runnerToken?: string;
}

const MAX_EVENT_MESSAGE = 2000;
const MAX_ERROR_MESSAGE = 4000;

/**
 * The RunnerCatalog of a remote runner (a CI job): Backstop's runner routes with a bearer
 * token. Each call is one request with a timeout; retries are where the SQL runner has them
 * (the heartbeat loop retries every tick, finalizeWithRetry until the lease would expire).
 * The lease fences every write on the server, exactly as the SQL conditions do.
 */
export function httpRunner(options: HttpRunnerOptions): HttpRunner {
  let token = options.token;
  let leaseTtlMs: number | null = null;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retryDelaysMs = options.retryDelaysMs ?? [500, 1000, 2000];
  const targets = new Map<string, ClaimAnswer['target'] & { previousBackupBytes: number | null }>();
  // A server older than live progress answers a claim without previousBackupBytes, refuses a
  // finalize that carries progress (400) and has no progress route: its runs get progress
  // with their heartbeats only, as they did.
  let progressRoute = false;

  // Under a lease, a request that hangs must not outlast the lease it is meant to keep.
  const leaseTimeoutMs = () => (leaseTtlMs === null ? timeoutMs : Math.min(timeoutMs, Math.max(1000, leaseTtlMs / 2)));
  const endpoint = (requestTimeoutMs = leaseTimeoutMs()): RunnerApiEndpoint => ({ apiUrl: options.apiUrl, token, timeoutMs: requestTimeoutMs });
  const runPath = (runId: string, action: string) => `/api/v1/runs/${encodeURIComponent(runId)}/${action}`;

  /** Repeats a request only while the failure says the API surely did not act on it. */
  const withRetries = async <T>(what: string, send: () => Promise<T>, retryIf: (error: unknown) => boolean): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await send();
      } catch (error) {
        const delay = retryDelaysMs[attempt];
        if (delay === undefined || !retryIf(error)) throw error;
        options.log.warn({ err: error, attempt: attempt + 1 }, `${what} failed; retrying`);
        await sleep(delay);
      }
    }
  };

  const drillsRefused = () =>
    new BackstopError('INVALID_INPUT', 'Verification drills restore into a scratch database next to the catalog: they run on Backstop workers (`backstop worker`), not over HTTP.');

  const catalog: RunnerCatalog = {
    async target(run): Promise<RunnerTarget> {
      const target = targets.get(run.id);
      if (!target) throw new BackstopError('INTERNAL', `Run ${run.id} was not claimed through this API client.`);
      return { ...target, databaseUrl: options.sourceUrl(target.name) };
    },
    renewLease: (input) => renewLeaseOverHttp(endpoint(), input),
    reportProgress: async (input) => !progressRoute || reportProgressOverHttp(endpoint(), input),
    finalize: (input) =>
      callRunnerApi<RunRecord>(endpoint(), 'POST', runPath(input.runId, 'finalize'), {
        leaseId: input.leaseId,
        outcome: input.outcome,
        error: input.error ? { code: input.error.code, message: input.error.message.slice(0, MAX_ERROR_MESSAGE) } : null,
        artifact: input.artifact ?? null,
        ...(input.progress && progressRoute ? { progress: input.progress } : {}),
      }),
    async release(input) {
      try {
        await callRunnerApi(endpoint(), 'POST', runPath(input.runId, 'release'), { leaseId: input.leaseId, reason: input.reason.slice(0, 500) || 'released' });
        return true;
      } catch (error) {
        if (isBackstopError(error, 'LEASE_LOST')) return false;
        throw error;
      }
    },
    async appendEvent(input) {
      try {
        await callRunnerApi(endpoint(), 'POST', runPath(input.runId, 'events'), {
          leaseId: input.leaseId,
          kind: input.kind,
          message: input.message.slice(0, MAX_EVENT_MESSAGE) || input.kind,
          ...(input.data ? { data: input.data } : {}),
        });
        return true;
      } catch (error) {
        if (isBackstopError(error, 'LEASE_LOST')) return false;
        throw error;
      }
    },
    getRun: async () => {
      throw drillsRefused();
    },
    recordVerification: async () => {
      throw drillsRefused();
    },
    // Read when the heartbeat starts, after the claim: by then `token` is the run's own.
    get heartbeatChannel(): HeartbeatChannel {
      return { kind: 'http', apiUrl: options.apiUrl, token, timeoutMs: leaseTimeoutMs(), progressRoute };
    },
  };

  return {
    catalog,
    async claim(runId, claimedBy) {
      const answer = await withRetries('claim', () => callRunnerApi<ClaimAnswer>(endpoint(timeoutMs), 'POST', runPath(runId, 'claim'), { claimedBy }), isUndelivered);
      if (answer.runnerToken) token = answer.runnerToken;
      leaseTtlMs = answer.leaseTtlMs;
      targets.set(answer.run.id, { ...answer.target, previousBackupBytes: answer.previousBackupBytes ?? null });
      progressRoute = 'previousBackupBytes' in answer;
      return { run: { ...answer.run, leaseId: answer.leaseId }, leaseTtlMs: answer.leaseTtlMs, heartbeatIntervalMs: answer.heartbeatIntervalMs };
    },
    // Reporting twice changes nothing (the second finds the run ended), so any transient failure is retried.
    report: (runId, jobStatus) =>
      withRetries('report', () => callRunnerApi<{ ended: boolean; run: RunRecord }>(endpoint(timeoutMs), 'POST', runPath(runId, 'report'), { jobStatus }), isTransient),
  };
}
