import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { endRunFromExecutor, getRun } from '../../db/runs.ts';
import type { CommandContext } from '../context.ts';
import { describeRun, printJson, runJson } from '../output.ts';

/**
 * The workflow's last, `if: always()` step. When the run step finished the run, this does
 * nothing. When it could not (it crashed, was killed, timed out, or never started), the job
 * is over, so no runner can still hold the run: end it now with the job's status instead of
 * waiting for the lease to expire.
 */
export function registerReportCommand(program: Command, context: () => CommandContext): void {
  program
    .command('report')
    .description("From a CI job's last step: end the run with the job's status if the run step did not.")
    .argument('<run-id>', 'the run the job was dispatched for')
    .requiredOption('--job-status <status>', 'success, failure or cancelled (GitHub: ${{ job.status }})')
    .option('--json', 'print the run as JSON')
    .action(async (runId: string, options: { jobStatus: string; json?: boolean }) => {
      const ctx = context();
      if (!['success', 'failure', 'cancelled'].includes(options.jobStatus)) {
        throw new BackstopError('INVALID_INPUT', `--job-status must be success, failure or cancelled, got "${options.jobStatus}".`);
      }
      const { pool } = await ctx.catalog();
      const before = await getRun(pool, runId);
      const ended = await endRunFromExecutor(pool, {
        runId,
        status: options.jobStatus === 'cancelled' ? 'cancelled' : 'failed',
        error: {
          code: 'EXECUTOR_ENDED',
          message: `The CI job ended (job status: ${options.jobStatus}) while the run was ${before.status}: the run step did not record an outcome.`,
        },
      });
      const run = ended ?? (await getRun(pool, runId));
      if (options.json) printJson(runJson(run));
      else process.stdout.write(`${ended ? 'Ended' : 'Already ended'}: ${describeRun(run)}\n`);
    });
}
