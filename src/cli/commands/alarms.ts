import type { Command } from 'commander';
import { listAlarms, type AlarmRecord } from '../../operations/listAlarms.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../output.ts';
import { sayingFlags } from './targetOptions.ts';

/** The lines `target show` and `alarms` print of active alarms. */
export function describeAlarms(alarms: readonly AlarmRecord[]): string {
  if (alarms.length === 0) return '  alarms active: none\n';
  return alarms.map((alarm) => `  ALARM ${alarm.kind} since ${alarm.since}: ${alarm.what}\n    what to do: ${alarm.whatToDo}\n`).join('');
}

export function registerAlarmCommand(program: Command, context: () => CommandContext): void {
  program
    .command('alarms')
    .description('List the alarms active now: a backup older than its bound, a slot without a run, a drill overdue or failing, a store that cannot be written.')
    .option('--target <name>', "only this target's")
    .option('--json', 'print JSON')
    .action((options: { target?: string; json?: boolean }) =>
      sayingFlags({ target: '--target' }, async () => {
        const ctx = context();
        const alarms = await listAlarms(ctx.db, { target: options.target });
        if (options.json) printJson(alarms);
        else if (alarms.length === 0) process.stdout.write('No alarms active.\n');
        else {
          process.stdout.write(
            `${table(
              ['TARGET', 'ALARM', 'SINCE', 'SENT', 'WHAT'],
              alarms.map((alarm) => [alarm.targetName, alarm.kind, alarm.since, String(alarm.sentCount), alarm.what]),
            )}\n`,
          );
        }
      }),
    );
}
