import { main } from '../cli/main.ts';
import { BackstopError, errorCodes } from '../core/errors.ts';
import { planAction } from './actionInputs.ts';

/**
 * The GitHub Action: `backstop run RUN_ID` for the run step, `backstop report RUN_ID
 * --job-status STATUS` for the `always()` step, with the inputs as the command's environment.
 * The command sets the step's outputs itself (GITHUB_OUTPUT) and its exit code is the step's.
 */
export async function runAction(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let plan;
  try {
    plan = planAction(env);
  } catch (error) {
    const code = error instanceof BackstopError ? error.code : 'INTERNAL';
    process.stdout.write(`::error title=Backstop::${escapeCommand((error as Error).message)}\n`);
    process.exitCode = errorCodes[code].exitCode;
    return;
  }
  // A value that came from somewhere other than a secret would otherwise show in the log.
  for (const secret of plan.secrets) process.stdout.write(`::add-mask::${escapeCommand(secret)}\n`);
  Object.assign(env, plan.environment);
  await main(['node', 'backstop', ...plan.argv]);
}

/** Workflow commands end at a newline and give % a meaning: GitHub's own escaping. */
function escapeCommand(value: string): string {
  return value.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}
