import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { generateIdentity } from '../../pipeline/age.ts';

export function registerKeygenCommand(program: Command): void {
  program
    .command('keygen')
    .description('Create an age identity file (keep it off the backup machines) and print its recipient for --encrypt-to.')
    .requiredOption('-o, --output <file>', 'where to write the identity (created with mode 0600; never overwritten)')
    .action(async (options: { output: string }) => {
      const { identity, recipient } = generateIdentity();
      const text = `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`;
      try {
        await fs.writeFile(options.output, text, { mode: 0o600, flag: 'wx' });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new BackstopError('INVALID_INPUT', code === 'EEXIST' ? `${options.output} already exists; choose another file.` : `Cannot write ${options.output}: ${code}.`);
      }
      process.stdout.write(`${recipient}\n`);
      process.stderr.write(`Identity written to ${options.output}. Encrypt with --encrypt-to ${recipient}; restore with --identity ${options.output}.\n`);
    });
}
