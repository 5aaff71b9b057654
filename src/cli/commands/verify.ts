import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { claimRunById } from '../../db/runLeases.ts';
import { createRun, getRun } from '../../db/runRecords.ts';
import { readRunManifest } from '../../pipeline/readRunManifest.ts';
import { openStore } from '../../storage/openStore.ts';
import type { CommandContext } from '../context.ts';
import { runInForeground } from './runInForeground.ts';
import { resolveRunId } from '../runIdArgument.ts';

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
      const { pool } = await ctx.catalog();
      const runId = await resolveRunId(pool, input);
      const subject = await getRun(pool, runId);
      if (subject.kind !== 'backup' || subject.status !== 'succeeded' || !subject.artifact) {
        throw new BackstopError(
          'INVALID_INPUT',
          `Run ${runId} is ${subject.kind === 'backup' ? subject.status : 'a verification'}; only a succeeded backup can be verified. List them with \`backstop runs --status succeeded\`.`,
        );
      }
      if (options.checksums) {
        const store = await openStore(subject.artifact.storeUrl);
        try {
          const { manifest } = await readRunManifest(store, { ...subject, artifact: subject.artifact });
          if (manifest.tables.some((table) => table.checksum === undefined)) {
            throw new BackstopError('INVALID_INPUT', `Backup ${runId} recorded no per-table checksums. Enable them on the target for future backups, or verify without --checksums.`);
          }
        } finally {
          await store.close();
        }
      }
      const run = await createRun(pool, {
        targetId: subject.targetId,
        trigger: 'cli',
        runDeadlineMs: ctx.config.runDeadlineMs,
        kind: 'verify',
        subjectRunId: subject.id,
      });
      const claimed = await claimRunById(pool, run.id, { leaseTtlMs: ctx.config.leaseTtlMs, claimedBy: `verify:${process.pid}` });
      const config = options.identity ? { ...ctx.config, identityFile: options.identity } : ctx.config;
      await runInForeground({ ...ctx, config }, claimed, { json: options.json });
    });
}
