import { z } from 'zod';
import { auditActionsMatching, auditActions, type AuditEntry } from '../core/auditEntry.ts';
import { parseAuditSince, SINCE_PATTERN } from '../core/auditSince.ts';
import { BackstopError } from '../core/errors.ts';
import { parseInput } from '../core/inputProblems.ts';
import { listAuditEntries } from '../db/auditLog.ts';
import type { Queryable } from '../db/pool.ts';

export const MAX_AUDIT_PAGE_SIZE = 200;

const actionGroups = [...new Set(auditActions.map((action) => action.split('.')[0]!))];

export const auditQuery = z.strictObject({
  since: z
    .string()
    .regex(SINCE_PATTERN, 'must be a duration back from now (30m, 24h, 7d, 2w) or a time (2026-01-31, 2026-01-31T12:00:00Z)')
    .optional()
    .describe('Only entries from this long ago (`24h`, `7d`) or since this time (ISO 8601).'),
  actor: z.string().min(1).max(200).optional().describe("Only entries of this actor: a token's or user's name or id, an OS user at the CLI, `scheduler`."),
  action: z
    .enum([...auditActions, ...actionGroups.filter((group) => !(auditActions as readonly string[]).includes(group))], {
      error: `must be an action or a group of them: ${[...actionGroups, ...auditActions].join(', ')}`,
    })
    .optional()
    .describe('Only this action (`target.update`), or every action of a group (`target`).'),
  limit: z.int().min(1).max(MAX_AUDIT_PAGE_SIZE).default(50).describe(`Page size, at most ${MAX_AUDIT_PAGE_SIZE}.`),
  cursor: z
    .string()
    .regex(/^[1-9][0-9]{0,17}$/)
    .optional()
    .describe('`nextCursor` of the previous page (newest first). Stable while entries are added.'),
});

export type AuditQuery = z.input<typeof auditQuery>;

export interface AuditPage {
  items: AuditEntry[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** One page of the audit trail, newest first, filtered by time, actor and action. */
export async function listAudit(db: Queryable, query: AuditQuery): Promise<AuditPage> {
  const { since, actor, action, limit, cursor } = parseInput(auditQuery, query);
  const from = since === undefined ? undefined : parseAuditSince(since);
  if (from === null) throw new BackstopError('INVALID_INPUT', `since "${since}" is not a time: use a duration (24h, 7d) or a date (2026-01-31).`, { field: 'since' });
  // One more than asked tells whether there is a next page without a count.
  const entries = await listAuditEntries(db, {
    since: from,
    actor,
    actions: action === undefined ? undefined : auditActionsMatching(action),
    beforeId: cursor === undefined ? undefined : Number(cursor),
    limit: limit + 1,
  });
  const items = entries.slice(0, limit);
  return { items, nextCursor: entries.length > limit ? String(items[items.length - 1]!.id) : null };
}
