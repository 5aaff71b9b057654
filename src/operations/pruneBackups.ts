import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuditActor } from '../core/auditActor.ts';
import { DEFAULT_GC_GRACE_MS, pruneTargets, type PruneReport } from './pruneTargets.ts';
import type { Queryable } from '../db/pool.ts';
import { parseInput } from '../core/inputProblems.ts';
import { audited, auditSubject } from './recordAudit.ts';
import { targetNameSchema as targetName } from './targets/targetInput.ts';

export { firstPruneError, type PruneReport } from './pruneTargets.ts';

export const pruneRequest = z.strictObject({
  target: targetName.optional().describe('Only this target; default every target.'),
  dryRun: z.boolean().default(false).describe('Plan and report, delete nothing.'),
  gracePeriodSeconds: z
    .number()
    .min(0)
    .default(DEFAULT_GC_GRACE_MS / 1000)
    .describe('Leftover prefixes younger than this are kept: a run may still be writing them.'),
  deleteUnknown: z.boolean().default(false).describe('Also delete the complete backups no catalog row vouches for.'),
});

export type PruneRequest = z.input<typeof pruneRequest>;

/**
 * Applies each target's retention policy and collects garbage (prefixes without a valid
 * manifest of their own once the grace period passed, superseded attempts, abandoned uploads).
 * The same pass the server makes every hour, asked for by a person, possibly as a dry run.
 * `beforeDeletingUnknown` hears each target's unknown complete backups before exactly those are
 * deleted (only with `deleteUnknown`). Per-target failures are in the report (firstPruneError).
 */
export async function pruneBackups(
  deps: { db: Queryable; log: Logger; actor: AuditActor },
  request: PruneRequest,
  hooks: { beforeDeletingUnknown?: (target: string, prefixes: readonly string[]) => void } = {},
): Promise<PruneReport> {
  const asked = request as { target?: unknown; dryRun?: unknown; deleteUnknown?: unknown } | null;
  const subject = auditSubject(asked?.target);
  return audited(
    deps.db,
    deps.actor,
    { action: 'prune', subject, details: { dryRun: asked?.dryRun === true, deleteUnknown: asked?.deleteUnknown === true }, detailsOf: pruneFacts },
    async () => {
      const parsed = parseInput(pruneRequest, request);
      return pruneTargets(deps, {
        targetName: parsed.target,
        dryRun: parsed.dryRun,
        gracePeriodMs: parsed.gracePeriodSeconds * 1000,
        deleteUnknown: parsed.deleteUnknown,
        beforeDeletingUnknown: hooks.beforeDeletingUnknown,
      });
    },
  );
}

/** What a prune did, counted: the backups and leftovers it deleted (none on a dry run). */
function pruneFacts(report: PruneReport) {
  return {
    targets: report.targets.length,
    backupsDeleted: report.targets.reduce((sum, target) => sum + target.deleted.length, 0),
    leftoversDeleted: report.dryRun ? 0 : report.targets.reduce((sum, target) => sum + target.garbage.length, 0),
  };
}
