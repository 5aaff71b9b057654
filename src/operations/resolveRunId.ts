import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PREFIX = /^[0-9a-f][0-9a-f-]{3,35}$/i;
const SHOWN_MATCHES = 10;

/** Whether an argument could name a run (a full id or the start of one). */
export function looksLikeRunId(input: string): boolean {
  return UUID.test(input) || PREFIX.test(input);
}

/**
 * A run id as a person types it: the full UUID, or its first characters as the dashboard and
 * `runs` show them (8), when they name exactly one run. Every CLI command that takes a run id
 * resolves it here.
 */
export async function resolveRunId(db: Queryable, input: string): Promise<string> {
  if (UUID.test(input)) return input.toLowerCase();
  if (!PREFIX.test(input)) {
    throw new BackstopError(
      'RUN_NOT_FOUND',
      `"${input}" is not a run id. Run ids are UUIDs, or their first 8 characters as the dashboard shows them; list them with \`backstop runs\`.`,
    );
  }
  const { rows } = await db.query<{ id: string; target: string; created_at: string }>(
    `select r.id, t.name as target, r.created_at from backstop.runs r join backstop.targets t on t.id = r.target_id
      where r.id::text like $1 order by r.created_at desc limit ${SHOWN_MATCHES + 1}`,
    [`${input.toLowerCase().replace(/[%_\\]/g, '')}%`],
  );
  if (rows.length === 1) return rows[0]!.id;
  if (rows.length === 0) {
    throw new BackstopError('RUN_NOT_FOUND', `No run id starts with "${input}". List runs with \`backstop runs\`.`);
  }
  const shown = rows.slice(0, SHOWN_MATCHES).map((row) => `${row.id} (${row.target}, ${new Date(row.created_at).toISOString()})`);
  throw new BackstopError(
    'INVALID_INPUT',
    `"${input}" starts ${rows.length > SHOWN_MATCHES ? `more than ${SHOWN_MATCHES}` : rows.length} run ids: ${shown.join(', ')}${rows.length > SHOWN_MATCHES ? ', …' : ''}. Pass more characters of the one you mean.`,
  );
}
