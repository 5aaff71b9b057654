import type { Command } from 'commander';
import type { AuditEntry } from '../../core/auditEntry.ts';
import { BackstopError } from '../../core/errors.ts';
import { listAudit, MAX_AUDIT_PAGE_SIZE, type AuditQuery } from '../../operations/listAudit.ts';
import type { Queryable } from '../../operations/openCatalog.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../output.ts';
import { readPages } from '../readPages.ts';
import { sayingFlags } from './targetOptions.ts';

const MAX_LISTED = 10_000;

function newestEntries(db: Queryable, filter: Omit<AuditQuery, 'limit' | 'cursor'>, count: number): Promise<AuditEntry[]> {
  return readPages(count, MAX_AUDIT_PAGE_SIZE, (limit, cursor) => listAudit(db, { ...filter, limit, cursor }));
}

/** The actor in one cell: what kind, the name, a token's role. */
function actorCell(entry: AuditEntry): string {
  const { actor } = entry;
  if ((actor.kind === 'token' || actor.kind === 'user') && actor.role) return `${actor.kind} ${actor.name} (${actor.role})`;
  return `${actor.kind} ${actor.name}`;
}

function detailsCell(entry: AuditEntry): string {
  return Object.entries(entry.details)
    .map(([key, value]) => `${key}=${Array.isArray(value) ? value.join(',') : String(value)}`)
    .join(' ');
}

export function registerAuditCommand(program: Command, context: () => CommandContext): void {
  program
    .command('audit')
    .description('Show the audit trail, newest first: who did what, when, from where, and how it ended.')
    .option('--since <duration|time>', 'only entries from this long ago (30m, 24h, 7d) or since this time (2026-01-31, ISO 8601)')
    .option('--actor <name>', "only this actor: a token's name or id, an OS user at the CLI, scheduler")
    .option('--action <action>', 'only this action (target.update) or group of actions (target, run, token, channel)')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'print JSON')
    .action(async (options: { since?: string; actor?: string; action?: string; limit: string; json?: boolean }) => {
      const ctx = context();
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LISTED) {
        throw new BackstopError('INVALID_INPUT', `--limit must be a whole number from 1 to ${MAX_LISTED}, got "${options.limit}".`);
      }
      const entries = await sayingFlags({ since: '--since', actor: '--actor', action: '--action' }, () =>
        newestEntries(ctx.db, { since: options.since, actor: options.actor, action: options.action }, limit),
      );
      if (options.json) {
        printJson(entries);
        return;
      }
      if (entries.length === 0) {
        process.stdout.write('No audit entries match.\n');
        return;
      }
      const rows = entries.map((entry) => [
        entry.at,
        actorCell(entry),
        `${entry.actor.client}${entry.actor.address ? ` ${entry.actor.address}` : ''}`,
        entry.action,
        entry.subject ?? '',
        entry.errorCode ? `${entry.outcome} ${entry.errorCode}` : entry.outcome,
        detailsCell(entry),
      ]);
      process.stdout.write(`${table(['AT', 'ACTOR', 'FROM', 'ACTION', 'SUBJECT', 'OUTCOME', 'DETAILS'], rows)}\n`);
    });
}
