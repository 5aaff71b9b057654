import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { DEFAULT_GC_GRACE_MS, firstPruneError, pruneTargets, type PruneReport } from '../../control/pruner.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../output.ts';

export function registerPruneCommand(program: Command, context: () => CommandContext): void {
  program
    .command('prune')
    .description(
      "Apply each target's retention policy (kept backups with their reasons, deleted ones) and delete leftover prefixes (no manifest, or a run that did not succeed) older than the grace period.",
    )
    .option('--target <name>', 'only this target')
    .option('--dry-run', 'print the plan, delete nothing')
    .option('--grace-period <seconds>', 'leftovers younger than this are kept (a run may still be writing them)', String(DEFAULT_GC_GRACE_MS / 1000))
    .option('--json', 'print the report as JSON')
    .action(async (options: { target?: string; dryRun?: boolean; gracePeriod: string; json?: boolean }) => {
      const grace = Number(options.gracePeriod);
      if (!Number.isFinite(grace) || grace < 0) {
        throw new BackstopError('INVALID_INPUT', `--grace-period must be a number of seconds, 0 or more, got "${options.gracePeriod}".`);
      }
      const ctx = context();
      const { pool } = await ctx.catalog();
      const report = await pruneTargets({ db: pool, log: ctx.log }, { targetName: options.target, dryRun: options.dryRun, gracePeriodMs: grace * 1000 });
      if (options.json) printJson(report);
      else process.stdout.write(formatReport(report));
      const failure = firstPruneError(report);
      if (failure) throw failure;
    });
}

function formatReport(report: PruneReport): string {
  const lines: string[] = [];
  const verb = report.dryRun ? 'would delete' : 'deleted';
  for (const target of report.targets) {
    lines.push(`${target.target}:${target.policy ? '' : ' no retention policy, every backup is kept'}`);
    for (const kept of target.keep) lines.push(`  keep    ${kept.id}  ${kept.takenAt}  ${kept.reasons.join(', ')}`);
    for (const doomed of target.delete) {
      const refused = target.refused.includes(doomed.id) ? '  (refused: now the newest or newest verified)' : '';
      lines.push(`  ${report.dryRun ? 'delete' : target.deleted.includes(doomed.id) ? 'deleted' : 'delete'} ${doomed.id}  ${doomed.takenAt}${refused}`);
    }
    for (const runId of target.resumed) lines.push(`  deleted ${runId}  (finishing an interrupted prune)`);
    for (const item of target.garbage) lines.push(`  ${verb} leftover ${item.prefix}  (${item.reason}, ${item.objects} object(s), newest ${item.newestAt})`);
    for (const upload of target.uploads) {
      const done = upload.result === 'pending' ? 'would abort' : upload.result === 'aborted' ? 'aborted' : 'closed (the store no longer knew it)';
      lines.push(`  ${done} multipart upload ${upload.uploadId} of ${upload.key}  (run ${upload.runId} left it unfinished)`);
    }
    if (target.garbageWaiting > 0) lines.push(`  ${target.garbageWaiting} leftover prefix(es) younger than the grace period kept for now`);
    for (const warning of target.warnings) lines.push(`  warning: ${warning}`);
    if (target.error) lines.push(`  error: [${target.error.code}] ${target.error.message}`);
  }
  if (report.targets.length === 0) lines.push('No targets.');
  if (report.dryRun) lines.push('Dry run: nothing was deleted.');
  return `${lines.join('\n')}\n`;
}
