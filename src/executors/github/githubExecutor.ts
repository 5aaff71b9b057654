import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { describeError } from '../../core/errors.ts';
import type { Queryable } from '../../db/pool.ts';
import { claimForDispatch, endRunFromExecutor, listExecutorRuns, updateExecutor } from '../../db/executorRuns.ts';
import type { RunRecord } from '../../db/runRecords.ts';
import { getTargetWithSecret } from '../../db/targets.ts';
import { GithubRefusal, type GithubClient, type GithubTarget } from './githubClient.ts';
import { startPeriodicTask } from '../../control/periodicTask.ts';

export interface GithubExecutorOptions {
  db: Queryable;
  client: GithubClient;
  log: Logger;
  startDeadlineMs: number;
  intervalMs: number;
}

export interface GithubExecutor {
  /** One pass: dispatch what is queued, then reconcile what GitHub is running. */
  tickOnce(): Promise<void>;
  /** No further passes; resolves once the pass under way has ended. */
  stop(): Promise<void>;
}

const DEFAULT_PG_MAJOR = '17';

/**
 * Dispatches queued backups of GitHub-executed targets as workflow_dispatch events, and
 * reconciles them with GitHub: a GitHub run that completed while the Backstop run never
 * finalized (the runner lost contact, so no `always()` step ran) is ended with GitHub's
 * conclusion; a cancelled Backstop run cancels its GitHub run. A dispatched run nobody claims
 * is timed out by the reaper at its start deadline. Safe with several instances: dispatch is
 * an atomic claim, and a duplicate GitHub run could not claim the run a second time anyway.
 */
export function startGithubExecutor(options: GithubExecutorOptions): GithubExecutor {
  const name = `dispatcher:${randomBytes(3).toString('hex')}`;

  const targetOf = (config: Record<string, unknown> | null): GithubTarget => {
    const value = (config ?? {}) as Partial<GithubTarget>;
    return { owner: String(value.owner), repo: String(value.repo), workflow: String(value.workflow), ref: String(value.ref ?? 'main') };
  };

  const dispatch = async (run: RunRecord, target: GithubTarget) => {
    const inputs = { run_id: run.id, target: run.targetName, pg_major: await serverMajor(options.db, run.targetId) };
    try {
      const result = await options.client.dispatch(target, inputs);
      if (result.workflowRunId !== null) {
        await updateExecutor(
          options.db,
          run.id,
          { state: 'dispatched', workflowRunId: result.workflowRunId, htmlUrl: result.htmlUrl },
          {
            kind: 'dispatched',
            message: `GitHub Actions run ${result.workflowRunId}: ${result.htmlUrl}`,
          },
        );
      } else {
        await updateExecutor(
          options.db,
          run.id,
          { state: 'correlating', dispatchedAt: new Date().toISOString() },
          {
            kind: 'dispatched',
            message: 'dispatched without run details (GitHub Enterprise Server); finding the run by its run-name',
          },
        );
      }
    } catch (error) {
      if (error instanceof GithubRefusal) {
        await endRunFromExecutor(options.db, { runId: run.id, status: 'failed', error: { code: 'DISPATCH_REFUSED', message: error.message } });
        options.log.warn({ runId: run.id, status: error.status }, 'GitHub refused the dispatch');
        return;
      }
      // Unreachable or rate-limited for too long: try again next pass, until the start deadline.
      await updateExecutor(options.db, run.id, { state: 'retry', lastError: describeError(error).message });
      options.log.warn({ runId: run.id, err: error }, 'dispatch failed; will retry');
    }
  };

  const reconcile = async (run: RunRecord) => {
    const executor = (run.executor ?? {}) as { state?: string; workflowRunId?: number; dispatchedAt?: string; cancelSent?: boolean };
    const config = (await getTargetWithSecret(options.db, run.targetId)).executor;
    if (!config) return;
    const target = targetOf(config as unknown as Record<string, unknown>);
    if (run.status === 'dispatched' && executor.state === 'retry') {
      await dispatch(run, target);
      return;
    }
    if (executor.state === 'correlating' && !executor.workflowRunId) {
      const found = await options.client.findRunByTitle(target, run.id, new Date(executor.dispatchedAt ?? run.createdAt));
      if (found) {
        await updateExecutor(
          options.db,
          run.id,
          { state: 'dispatched', workflowRunId: found.id, htmlUrl: found.htmlUrl },
          {
            kind: 'correlated',
            message: `GitHub Actions run ${found.id}: ${found.htmlUrl}`,
          },
        );
      }
      return;
    }
    if (!executor.workflowRunId) return;
    const wantsCancel = run.status === 'cancelled' || run.status === 'cancelling';
    if (wantsCancel && !executor.cancelSent) {
      const result = await options.client.cancelRun(target, executor.workflowRunId);
      await updateExecutor(
        options.db,
        run.id,
        { cancelSent: true, cancelResult: result },
        {
          kind: 'github_cancel',
          message: result === 'cancelling' ? `asked GitHub to cancel run ${executor.workflowRunId}` : `GitHub run ${executor.workflowRunId} had already finished`,
        },
      );
      if (run.status === 'cancelled') return;
    }
    const githubRun = await options.client.getRun(target, executor.workflowRunId);
    if (githubRun.status !== 'completed') return;
    const conclusion = githubRun.conclusion ?? 'unknown';
    const ended = await endRunFromExecutor(options.db, {
      runId: run.id,
      status: conclusion === 'cancelled' ? 'cancelled' : 'failed',
      error: {
        code: 'EXECUTOR_ENDED',
        message: `GitHub Actions run ${githubRun.id} completed with conclusion "${conclusion}" but the runner never reported an outcome (${githubRun.htmlUrl}).`,
      },
    });
    if (ended) options.log.warn({ runId: run.id, conclusion }, 'ended a run whose GitHub job completed without reporting');
  };

  const task = startPeriodicTask(options.intervalMs, async () => {
    try {
      const claimed = await claimForDispatch(options.db, { startDeadlineMs: options.startDeadlineMs, limit: 20, dispatcher: name });
      for (const { run, executorConfig } of claimed) await dispatch(run, targetOf(executorConfig));
      for (const run of await listExecutorRuns(options.db)) {
        await reconcile(run).catch((error) => options.log.warn({ runId: run.id, err: error }, 'reconcile failed; will retry'));
      }
    } catch (error) {
      options.log.warn({ err: error }, 'GitHub executor pass failed; will retry');
    }
  });
  return { tickOnce: task.runOnce, stop: task.stop };
}

/** The source server's major version, so the workflow installs a matching client; best effort. */
async function serverMajor(db: Queryable, targetId: string): Promise<string> {
  try {
    const target = await getTargetWithSecret(db, targetId);
    if (!target.databaseUrl) return DEFAULT_PG_MAJOR;
    const client = new pg.Client({ connectionString: target.databaseUrl, connectionTimeoutMillis: 5000 });
    client.on('error', () => {});
    await client.connect();
    try {
      const { rows } = await client.query<{ v: string }>(`select current_setting('server_version_num') as v`);
      return String(Math.floor(Number(rows[0]!.v) / 10000));
    } finally {
      await client.end().catch(() => {});
    }
  } catch {
    return DEFAULT_PG_MAJOR;
  }
}
