import type { Command } from 'commander';
import { parseInput } from '../../core/inputProblems.ts';
import { jobReportRequest, reportJobStatus } from '../../operations/reportJobStatus.ts';
import type { CommandContext } from '../context.ts';
import { writeGithubOutputs } from '../githubOutput.ts';
import { describeRun, printJson, runJson } from '../output.ts';
import { openHttpRunner, remoteRunnerOptionHelp, remoteRunnerSettings, type RemoteRunnerFlags } from '../remoteRunner.ts';
import { sayingFlags } from './targetOptions.ts';

/**
 * The workflow's last, `if: always()` step. When the run step finished the run, this does
 * nothing. When it could not (it crashed, was killed, timed out, or never started), the job
 * is over, so no runner can still hold the run: end it now with the job's status instead of
 * waiting for the lease to expire. Through the catalog, or over HTTP like `backstop run`.
 */
export function registerReportCommand(program: Command, context: () => CommandContext): void {
  program
    .command('report')
    .description("From a CI job's last step: end the run with the job's status if the run step did not.")
    .argument('<run-id>', 'the run the job was dispatched for')
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, written as GitHub spells it
    .requiredOption('--job-status <status>', 'success, failure or cancelled (GitHub: ${{ job.status }})')
    .option('--json', 'print the run as JSON')
    .option('--api-url <url>', remoteRunnerOptionHelp.apiUrl)
    .option('--token <token>', remoteRunnerOptionHelp.token)
    .action(async (runId: string, options: { jobStatus: string; json?: boolean } & RemoteRunnerFlags) => {
      const ctx = context();
      // Checked here too: over HTTP, a bad status is refused before anything is sent.
      const request = await sayingFlags({ jobStatus: '--job-status' }, async () => parseInput(jobReportRequest, { jobStatus: options.jobStatus }));
      const remote = remoteRunnerSettings(ctx.config, options);
      const { ended, run } = remote ? await openHttpRunner(ctx, remote).report(runId, request.jobStatus) : await reportJobStatus(ctx.db, runId, request);
      writeGithubOutputs(run);
      if (options.json) printJson(runJson(run));
      else process.stdout.write(`${ended ? 'Ended' : 'Already ended'}: ${describeRun(run)}\n`);
    });
}
