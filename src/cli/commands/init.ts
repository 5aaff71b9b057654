import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { BACKSTOP_VERSION } from '../../core/version.ts';

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
        `Wrote ${destination}.\nNext: add the repository secrets BACKSTOP_DATABASE_URL and your store credentials, then point a target at it:\n` +
          `  backstop target add NAME --database-url URL --store s3://… --github OWNER/REPO --github-workflow backstop-backup.yml\n`,
      );
    });
}
