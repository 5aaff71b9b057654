import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { BACKSTOP_VERSION } from '../../version.ts';

export const GITHUB_TEMPLATE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'templates', 'github', 'backup.yml');

export function registerInitCommand(program: Command): void {
  const init = program.command('init').description('Write deployment files into a repository.');
  init
    .command('github')
    .description('Write the GitHub Actions workflow that executes dispatched runs (.github/workflows/backstop-backup.yml).')
    .option('--dir <repository>', 'repository root', '.')
    .option('--force', 'overwrite an existing workflow file')
    .action(async (options: { dir: string; force?: boolean }) => {
      const destination = path.join(path.resolve(options.dir), '.github', 'workflows', 'backstop-backup.yml');
      const template = (await fs.readFile(GITHUB_TEMPLATE, 'utf8')).replace(/BACKSTOP_VERSION: '[^']*'/, `BACKSTOP_VERSION: '${BACKSTOP_VERSION}'`);
      await fs.mkdir(path.dirname(destination), { recursive: true });
      try {
        await fs.writeFile(destination, template, { flag: options.force ? 'w' : 'wx' });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new BackstopError('INVALID_INPUT', `${destination} already exists. Pass --force to overwrite it.`);
        }
        throw error;
      }
      process.stdout.write(
        `Wrote ${destination}.\n` +
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
