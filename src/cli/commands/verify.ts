import type { Command } from 'commander';
import { BackstopError, isBackstopError } from '../../core/errors.ts';
import { claimRun } from '../../operations/claimRun.ts';
import { queueDrill } from '../../operations/queueDrill.ts';
import { resolveRunId } from '../../operations/resolveRunId.ts';
import { parseIdentities } from '../../pipeline/age.ts';
import type { CommandContext } from '../context.ts';
import { warn } from '../output.ts';
import { readIdentityFile } from './restore.ts';
import { runInForeground } from './runInForeground.ts';

export function registerVerifyCommand(program: Command, context: () => CommandContext): void {
  program
    .command('verify')
    .description('Restore drill: check stored digests, restore into a scratch database, compare row counts (and checksums) with the manifest, record the result.')
    .argument('<run-id>', 'a succeeded backup run')
    .option('--checksums', 'require and compare per-table content checksums (the target must record them: --checksums on the target)')
    .option('--identity <file>', 'age identity file, for an encrypted backup (or BACKSTOP_IDENTITY_FILE)')
    .option('--json', 'print the verification run as JSON')
    .action(async (input: string, options: { checksums?: boolean; identity?: string; json?: boolean }) => {
      const ctx = context();
      // A missing or unreadable identity file is said now, not by a drill that fails later.
      if (options.identity) parseIdentities(await readIdentityFile(options.identity));
      const runId = await resolveRunId(ctx.db, input);
      const config = options.identity ? { ...ctx.config, identityFile: options.identity } : ctx.config;
      let queued: Awaited<ReturnType<typeof queueDrill>>;
      try {
        queued = await queueDrill(ctx.db, config, { runId, requireChecksums: options.checksums, readManifest: options.identity !== undefined }, { trigger: 'cli', actor: ctx.actor });
      } catch (error) {
        if (!isBackstopError(error, 'IDENTITY_REQUIRED')) throw error;
        throw new BackstopError(
          'IDENTITY_REQUIRED',
          `Backup ${runId} is encrypted, and no identity at hand decrypts it (${error.message}). Pass --identity FILE (or set BACKSTOP_IDENTITY_FILE) with the identity of one of its recipients; no drill was recorded.`,
        );
      }
      const { run: drill, encrypted } = queued;
      if (options.identity && encrypted === false) warn(`--identity ${options.identity} is not needed: backup ${runId} is not encrypted; it was ignored.`);
      // The drill runs here, in the foreground, rather than waiting for a worker.
      const claimed = await claimRun(ctx.db, ctx.config, drill.id, `verify:${process.pid}`);
      await runInForeground({ ...ctx, config }, claimed, { json: options.json });
    });
}
