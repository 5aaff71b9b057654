import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { adviceForOsError } from '../../core/osError.ts';
import { generateIdentity } from '../../pipeline/age.ts';
import { printJson } from '../output.ts';

export function registerKeygenCommand(program: Command): void {
  program
    .command('keygen')
    .description('Create an age identity file (keep it off the backup machines) and print its recipient for --encrypt-to.')
    .requiredOption('-o, --output <file>', 'where to write the identity (created with mode 0600; never overwritten)')
    .option('--json', 'print the recipient and the file as JSON')
    .action(async (options: { output: string; json?: boolean }) => {
      const { identity, recipient } = generateIdentity();
      const text = `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`;
      try {
        await fs.writeFile(options.output, text, { mode: 0o600, flag: 'wx' });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw new BackstopError('INVALID_INPUT', `${options.output} already exists; choose another file.`);
        throw new BackstopError('INVALID_INPUT', `Cannot write ${options.output}: ${adviceForOsError(error) ?? code} (${code}).`);
      }
      if (options.json) {
        printJson({ recipient, identityFile: path.resolve(options.output) });
        return;
      }
      process.stdout.write(`${recipient}\n`);
      process.stderr.write(`Identity written to ${options.output}. Encrypt with --encrypt-to ${recipient}; restore with --identity ${options.output}.\n`);
    });
}
