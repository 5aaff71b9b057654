import { BackstopError } from '../core/errors.ts';
import { jobStatuses } from '../core/jobStatus.ts';

/**
 * The GitHub Action's inputs (action.yml), read the way the runner hands them over: each as
 * INPUT_<NAME>, upper-cased with hyphens kept. What the action does with them is what the
 * `backstop` command does with its environment, so they become that environment: one code
 * path for the command line, the npm package, the executable and the action.
 */

export interface ActionPlan {
  /** The command line after `backstop`. */
  argv: string[];
  /** Variables to set for the command; the store credentials only when given. */
  environment: Record<string, string>;
  /** Values GitHub must mask in the job's log even when they did not come from a secret. */
  secrets: string[];
}

const environmentOf = {
  'api-url': 'BACKSTOP_API_URL',
  'runner-token': 'BACKSTOP_RUNNER_TOKEN',
  'source-url': 'BACKSTOP_SOURCE_URL',
  'aws-access-key-id': 'AWS_ACCESS_KEY_ID',
  'aws-secret-access-key': 'AWS_SECRET_ACCESS_KEY',
  'aws-session-token': 'AWS_SESSION_TOKEN',
} as const;

const secretInputs = new Set(['runner-token', 'source-url', 'aws-secret-access-key', 'aws-session-token']);

export function actionInput(env: Record<string, string | undefined>, name: string): string {
  return (env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();
}

/** Every problem at once, each naming the input and the secret that usually feeds it. */
export function planAction(env: Record<string, string | undefined>): ActionPlan {
  const problems: string[] = [];
  const runId = actionInput(env, 'run-id');
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, shown to the user as written
  if (!runId) problems.push('`run-id` is empty: pass `run-id: ${{ inputs.run_id }}` (the id Backstop dispatched the workflow with).');
  if (!actionInput(env, 'api-url'))
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, shown to the user as written
    problems.push("`api-url` is empty: pass `api-url: ${{ secrets.BACKSTOP_API_URL }}` and set that repository secret to your Backstop server's address.");
  if (!actionInput(env, 'runner-token')) {
    problems.push(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, shown to the user as written
      '`runner-token` is empty: pass `runner-token: ${{ secrets.BACKSTOP_RUNNER_TOKEN }}` and set that secret to a token from `backstop token create --name NAME --github OWNER/REPO`.',
    );
  }
  const jobStatus = actionInput(env, 'job-status');
  if (jobStatus && !(jobStatuses as readonly string[]).includes(jobStatus)) {
    problems.push(`\`job-status\` must be success, failure or cancelled (pass \`job-status: \${{ job.status }}\`), got "${jobStatus.slice(0, 50)}".`);
  }
  if (problems.length > 0) throw new BackstopError('INVALID_INPUT', `The Backstop action's inputs: ${problems.join(' ')}`);

  const environment: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [input, variable] of Object.entries(environmentOf)) {
    const value = actionInput(env, input);
    if (!value) continue;
    environment[variable] = value;
    if (secretInputs.has(input)) secrets.push(value);
  }
  // The step ends the run only when the run step could not: the `always()` step passes the job's status.
  const argv = jobStatus ? ['report', runId, '--job-status', jobStatus] : ['run', runId];
  return { argv, environment, secrets };
}
