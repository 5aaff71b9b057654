import { z } from 'zod';
import type { Config } from '../core/config.ts';
import { BackstopError } from '../core/errors.ts';
import { withTransaction, type Pool } from '../db/pool.ts';
import { claimRunById } from '../db/runLeases.ts';
import { previousBackupBytes } from '../db/runProgress.ts';
import { getRun, type ClaimedRun } from '../db/runRecords.ts';
import { getTargetWithSecret, type TargetOptions } from '../db/targets.ts';
import { issueRunnerToken } from '../db/tokens.ts';
import { parseInput } from '../core/inputProblems.ts';

export const claimRequest = z
  .strictObject({
    claimedBy: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9 _.:/@()#-]{0,199}$/)
      .optional()
      .describe('Who runs it, e.g. a CI job URL.'),
  })
  .meta({ examples: [{ claimedBy: 'github:acme/app#1234' }] });

export type ClaimRequest = z.input<typeof claimRequest>;

export interface RunnerClaim {
  leaseId: string;
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
  leaseExpiresAt: string;
  deadlineAt: string;
  run: ClaimedRun;
  /** Where to store and how to dump; never the database URL. */
  target: { id: string; name: string; storeUrl: string; options: TargetOptions; continuous: { slot: string } | null };
  /** The plain size of the target's newest succeeded backup: what the runner reports this backup's progress against. */
  previousBackupBytes: number | null;
  /** Claimed with a GitHub runner token: the run's own runner token, for every later call. */
  runnerToken?: string;
}

/**
 * A remote runner claims a backup: a new attempt and lease, and what it needs to know of the
 * target. Drills run on Backstop's workers only (they restore next to the catalog). A GitHub
 * job (`byGithub`, holding its repository's token) may take only a run Backstop dispatched,
 * and gets the run's own runner token with the claim, in the same transaction: a job never
 * holds a lease it cannot use.
 */
export async function claimForRunner(
  db: Pool,
  config: Pick<Config, 'leaseTtlMs' | 'heartbeatIntervalMs'>,
  runId: string,
  request: ClaimRequest,
  caller: { byGithub: boolean; defaultName: string },
): Promise<RunnerClaim> {
  const { claimedBy } = parseInput(claimRequest, request);
  const run = await getRun(db, runId);
  if (run.kind !== 'backup') {
    throw new BackstopError(
      'RUN_NOT_CLAIMABLE',
      `Run ${run.id} is a verification drill: drills restore into a scratch database next to the catalog and run on Backstop workers (\`backstop worker\`), not over HTTP.`,
    );
  }
  if (caller.byGithub && run.status === 'queued') {
    throw new BackstopError('RUN_NOT_CLAIMABLE', `Run ${run.id} is queued, not dispatched: a GitHub job may only claim the run Backstop dispatched to it.`);
  }
  const options = {
    leaseTtlMs: config.leaseTtlMs,
    claimedBy: claimedBy ?? caller.defaultName,
    // A repository's token takes only what Backstop handed to GitHub, checked in the claim itself.
    fromStatuses: caller.byGithub ? (['dispatched'] as Array<'dispatched'>) : undefined,
  };
  const { claimed, runnerToken } = caller.byGithub
    ? await withTransaction(db, async (client) => {
        const claimed = await claimRunById(client, run.id, options);
        return { claimed, runnerToken: await issueRunnerToken(client, run.id) };
      })
    : { claimed: await claimRunById(db, run.id, options), runnerToken: undefined };
  const target = await getTargetWithSecret(db, claimed.targetId);
  return {
    leaseId: claimed.leaseId,
    leaseTtlMs: Math.round(config.leaseTtlMs),
    heartbeatIntervalMs: Math.round(config.heartbeatIntervalMs),
    leaseExpiresAt: claimed.leaseExpiresAt!,
    deadlineAt: claimed.deadlineAt,
    run: claimed,
    // An allow-list, so a secret added to targets later cannot leak through here.
    target: { id: target.id, name: target.name, storeUrl: target.storeUrl, options: target.options, continuous: target.continuous ? { slot: target.continuous.slot } : null },
    previousBackupBytes: await previousBackupBytes(db, claimed.targetId),
    ...(runnerToken ? { runnerToken } : {}),
  };
}
