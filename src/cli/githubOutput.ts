import fs from 'node:fs';

/**
 * In a GitHub Actions step (GITHUB_OUTPUT set), `run` and `report` also set the step's outputs
 * — `status` and `error-code` of the run — so later steps can act on them; the GitHub Action
 * is these commands. One `name=value` line each: neither value can hold a newline.
 */
export function writeGithubOutputs(run: { status: string; error: { code: string } | null }, env: Record<string, string | undefined> = process.env): void {
  const file = env.GITHUB_OUTPUT;
  if (!file) return;
  const outputs = { status: run.status, 'error-code': run.error?.code ?? '' };
  fs.appendFileSync(
    file,
    Object.entries(outputs)
      .map(([name, value]) => `${name}=${value.replace(/[\r\n]/g, ' ')}\n`)
      .join(''),
  );
}
