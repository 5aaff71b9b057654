import type { Command } from 'commander';
import { claimRun } from '../../operations/claimRun.ts';
import { queueDrill } from '../../operations/queueDrill.ts';
import { resolveRunId } from '../../operations/resolveRunId.ts';
import type { CommandContext } from '../context.ts';
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
      const runId = await resolveRunId(ctx.db, input);
      const drill = await queueDrill(ctx.db, ctx.config, { runId, requireChecksums: options.checksums }, { trigger: 'cli' });
      // The drill runs here, in the foreground, rather than waiting for a worker.
      const claimed = await claimRun(ctx.db, ctx.config, drill.id, `verify:${process.pid}`);
      const config = options.identity ? { ...ctx.config, identityFile: options.identity } : ctx.config;
      await runInForeground({ ...ctx, config }, claimed, { json: options.json });
    });
}
