import type { Command } from 'commander';
import type { TargetContinuity } from '../../operations/targets/targetWindow.ts';
import { targetWindow } from '../../operations/targets/targetWindow.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../output.ts';
import { sayingFlags } from './targetOptions.ts';

/** A target's continuity in words: the stream, the window and every limit (`window`, `target show`). */
export function describeContinuity(continuity: TargetContinuity | null | undefined): string {
  if (!continuity) return '';
  const { window } = continuity;
  const lines = [
    `  continuity: ${continuity.state}${continuity.stoppedReason ? ` (${continuity.stoppedReason})` : ''}; slot and publication ${continuity.slot}`,
    window.from && window.to
      ? `  restorable: from ${window.from.at} (LSN ${window.from.lsn}) to ${window.to.at} (LSN ${window.to.lsn})${window.rpoSeconds !== null ? `; newest stored commit ${window.rpoSeconds} s ago` : ''}`
      : '  restorable: nothing yet',
  ];
  for (const table of continuity.unprotectedTables) lines.push(`  not continuously protected: ${table.schema}.${table.table}: ${table.reason}. Fix: ${table.fix}`);
  for (const limit of window.limits) if (limit.kind !== 'unprotected_tables') lines.push(`  limit: ${limit.message}`);
  return `${lines.join('\n')}\n`;
}

export function registerWindowCommand(program: Command, context: () => CommandContext): void {
  program
    .command('window')
    .description('Show the restorable window of a continuous target: from which second to which a point-in-time restore can go, the gaps, and what limits it.')
    .argument('<target>', 'target name')
    .option('--json', 'print JSON')
    .action((name: string, flags: { json?: boolean }) =>
      sayingFlags({ target: 'TARGET' }, async () => {
        const shown = await targetWindow({ pool: (await context().catalog()).pool }, name);
        if (flags.json) {
          printJson(shown);
          return;
        }
        if (!shown.continuity) {
          process.stdout.write(`Target ${shown.target} is not continuous: \`backstop target update ${shown.target} --continuous\` turns it on.\n`);
          return;
        }
        process.stdout.write(`target ${shown.target}\n${describeContinuity(shown.continuity)}`);
      }),
    );
}
