import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { bundledFiles } from '../../core/bundledFiles.ts';
import { BackstopError } from '../../core/errors.ts';
import { defaultActionReference, parseActionReference } from '../actionReference.ts';
import { printJson } from '../output.ts';

/** The placeholder the template's `uses:` lines carry until `init github` pins them. */
export const ACTION_PLACEHOLDER = 'OWNER/REPO@FULL_COMMIT_SHA';

export function githubTemplate(): string {
  return bundledFiles?.['templates/github/backup.yml'] ?? readFileSync(new URL('../../../templates/github/backup.yml', import.meta.url), 'utf8');
}

export function registerInitCommand(program: Command): void {
  const init = program.command('init').description('Write deployment files into a repository.');
  init
    .command('github')
    .description('Write the GitHub Actions workflow that executes dispatched runs (.github/workflows/backstop-backup.yml).')
    .option('--dir <repository>', 'repository root', '.')
    .option('--action-ref <owner/repo@sha>', "the Backstop action the workflow runs (default: Backstop's repository at this version's commit)")
    .option('--force', 'overwrite an existing workflow file')
    .option('--json', 'print the written file, the action and the secrets to add as JSON')
    .action(async (options: { dir: string; actionRef?: string; force?: boolean; json?: boolean }) => {
      const reference = options.actionRef === undefined ? await defaultActionReference() : parseActionReference(options.actionRef);
      const repository = path.resolve(options.dir);
      // A mistyped --dir would otherwise become a new folder tree holding a lone workflow.
      const isFolder = await fs.stat(repository).then(
        (stat) => stat.isDirectory(),
        () => false,
      );
      if (!isFolder) throw new BackstopError('INVALID_INPUT', `--dir ${repository} is not a folder: pass the root folder of the repository.`);
      const destination = path.join(repository, '.github', 'workflows', 'backstop-backup.yml');
      const template = githubTemplate().replaceAll(ACTION_PLACEHOLDER, reference.uses);
      await fs.mkdir(path.dirname(destination), { recursive: true });
      try {
        await fs.writeFile(destination, template, { flag: options.force ? 'w' : 'wx' });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new BackstopError('INVALID_INPUT', `${destination} already exists. Pass --force to overwrite it.`);
        }
        throw error;
      }
      if (!reference.pinned) {
        process.stderr.write(
          `backstop: the workflow runs ${reference.uses}, which is not a full commit SHA: whoever can move that reference can run other code with your secrets. Pin a commit unless the repository is yours.\n`,
        );
      }
      if (options.json) {
        printJson({
          workflow: destination,
          action: reference.uses,
          secrets: ['BACKSTOP_API_URL', 'BACKSTOP_RUNNER_TOKEN', 'BACKSTOP_SOURCE_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
        });
        return;
      }
      process.stdout.write(
        `Wrote ${destination} (action ${reference.uses}).\n` +
          `Next, the job talks to your Backstop server over HTTP (it never gets the catalog's URL):\n` +
          `  1. Make the repository's runner token (shown once):\n` +
          `       backstop token create --name github-REPO --github OWNER/REPO\n` +
          `  2. Add the repository secrets (Settings → Secrets and variables → Actions):\n` +
          `       BACKSTOP_API_URL       your server's address, e.g. https://backstop.example.com\n` +
          `       BACKSTOP_RUNNER_TOKEN  the token from step 1\n` +
          `       BACKSTOP_SOURCE_URL    the database to back up (Backstop's API never sends database URLs)\n` +
          `       AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the store's credentials\n` +
          `  3. Point a target at the workflow, and run a server or worker with BACKSTOP_GITHUB_TOKEN to dispatch:\n` +
          `       backstop target add NAME --database-url URL --store s3://… --github OWNER/REPO --github-workflow backstop-backup.yml\n`,
      );
    });
}
