import type { Command } from 'commander';
import { firstPruneError, pruneBackups, pruneRequest, type PruneReport } from '../../operations/pruneBackups.ts';
import { sayingFlags } from './targetOptions.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../output.ts';

export function registerPruneCommand(program: Command, context: () => CommandContext): void {
  program
    .command('prune')
    .description(
      "Apply each target's retention policy (kept backups with their reasons, deleted ones) and delete leftover prefixes (no valid manifest of their own, or a superseded attempt) older than the grace period. Complete backups no catalog row vouches for are kept and listed as unknown.",
    )
    .option('--target <name>', 'only this target')
    .option('--dry-run', 'print the plan, delete nothing')
    .option('--grace-period <seconds>', 'leftovers younger than this are kept (a run may still be writing them)', String(pruneRequest.shape.gracePeriodSeconds.parse(undefined)))
    .option('--delete-unknown', 'also delete the unknown complete backups (listed first); import them instead with `backstop import` to keep them')
    .option('--json', 'print the report as JSON')
    .action(async (options: { target?: string; dryRun?: boolean; gracePeriod: string; deleteUnknown?: boolean; json?: boolean }) => {
      const ctx = context();
      const report = await sayingFlags({ target: '--target', gracePeriodSeconds: '--grace-period' }, () =>
        pruneBackups(
          { db: ctx.db, log: ctx.log, actor: ctx.actor },
          {
            target: options.target,
            dryRun: options.dryRun ?? false,
            gracePeriodSeconds: options.gracePeriod.trim() === '' ? Number.NaN : Number(options.gracePeriod),
            deleteUnknown: options.deleteUnknown ?? false,
          },
          {
            // The names first, then exactly those are deleted (to stderr with --json: stdout is one document).
            beforeDeletingUnknown: (target, prefixes) => {
              const lines = [`${target}: deleting ${prefixes.length} unknown complete backup(s), as --delete-unknown asks:`, ...prefixes.map((prefix) => `  ${prefix}`)];
              (options.json ? process.stderr : process.stdout).write(`${lines.join('\n')}\n`);
            },
          },
        ),
      );
      if (options.json) printJson(report);
      else process.stdout.write(formatReport(report, options.deleteUnknown === true));
      const failure = firstPruneError(report);
      if (failure) throw failure;
    });
}

/** `deleteUnknown`: a dry run's plan shows the unknown backups --delete-unknown would delete. */
function formatReport(report: PruneReport, deleteUnknown: boolean): string {
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
    for (const segment of target.segments) lines.push(`  ${verb} segment ${segment.manifestKey}  (${segment.startLsn}..${segment.endLsn}: no kept base backup replays it)`);
    for (const item of target.segmentDebris) lines.push(`  ${verb} segment data ${item.key}  (no manifest: a streamer's crash; newest ${item.newestAt})`);
    if (target.segmentDebrisWaiting > 0) lines.push(`  ${target.segmentDebrisWaiting} segment data object(s) without a manifest younger than the grace period kept for now`);
    for (const upload of target.uploads) {
      const done = upload.result === 'pending' ? 'would abort' : upload.result === 'aborted' ? 'aborted' : 'closed (the store no longer knew it)';
      lines.push(`  ${done} multipart upload ${upload.uploadId} of ${upload.key}  (run ${upload.runId} left it unfinished)`);
    }
    for (const item of target.unverified) lines.push(`  kept    ${item.id}  (retention chose it, but it was left in place: ${item.reason})`);
    const wouldDeleteUnknown = report.dryRun && deleteUnknown && !target.error;
    for (const item of target.unknown) {
      const done = target.unknownDeleted.includes(item.prefix) ? 'deleted unknown' : wouldDeleteUnknown ? 'would delete unknown' : 'unknown';
      lines.push(`  ${done} ${item.prefix}  (a complete backup: ${item.detail}; ${item.objects} object(s), newest ${item.newestAt})`);
    }
    if (target.unknown.length > target.unknownDeleted.length && !wouldDeleteUnknown) {
      lines.push(
        `  ${target.unknown.length - target.unknownDeleted.length} unknown complete backup(s) kept: import them (backstop import STORE_URL, the target's store) or delete them (backstop prune --target ${target.target} --delete-unknown)`,
      );
    }
    if (target.garbageWaiting > 0) lines.push(`  ${target.garbageWaiting} leftover prefix(es) younger than the grace period kept for now`);
    for (const warning of target.warnings) lines.push(`  warning: ${warning}`);
    if (target.error) lines.push(`  error: [${target.error.code}] ${target.error.message}`);
  }
  if (report.targets.length === 0) lines.push('No targets.');
  if (report.dryRun) lines.push('Dry run: nothing was deleted.');
  return `${lines.join('\n')}\n`;
}
