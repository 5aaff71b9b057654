import type { AuditActor } from '../core/auditActor.ts';
import type { AuditSince } from '../core/auditSince.ts';
import type { ApiTokenRole } from '../core/roles.ts';
import type { AuditAction, AuditDetails, AuditEntry, AuditOutcome } from '../core/auditEntry.ts';
import type { Queryable } from './pool.ts';

/** What an operation records; the catalog adds the id and the time (its own clock). */
export type NewAuditEntry = Omit<AuditEntry, 'id' | 'at'>;

interface AuditRow {
  id: number;
  at: string;
  actor_kind: AuditActor['kind'];
  actor_id: string | null;
  actor_name: string;
  actor_role: string | null;
  actor_address: string | null;
  client: AuditActor['client'];
  action: AuditAction;
  subject: string | null;
  outcome: AuditOutcome;
  error_code: string | null;
  details: AuditDetails;
}

const columns = 'id, at, actor_kind, actor_id, actor_name, actor_role, actor_address, client, action, subject, outcome, error_code, details';

/** Appends one entry. The table refuses every other write (migration 019). */
export async function insertAuditEntry(db: Queryable, entry: NewAuditEntry): Promise<AuditEntry> {
  const { actor } = entry;
  const { rows } = await db.query<AuditRow>(
    `insert into backstop.audit_log (actor_kind, actor_id, actor_name, actor_role, actor_address, client, action, subject, outcome, error_code, details)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning ${columns}`,
    [
      actor.kind,
      'id' in actor ? actor.id : null,
      actor.name,
      'role' in actor ? actor.role : null,
      actor.address,
      actor.client,
      entry.action,
      entry.subject,
      entry.outcome,
      entry.errorCode,
      JSON.stringify(entry.details),
    ],
  );
  return toEntry(rows[0]!);
}

export interface AuditFilter {
  /** Entries at or after this time, or this long before now by the database's clock. */
  since?: AuditSince;
  /** Entries whose actor's name or id is this. */
  actor?: string;
  /** Entries of these actions. */
  actions?: readonly AuditAction[];
  /** Keyset pagination: entries with a smaller id (newest first). */
  beforeId?: number;
  limit: number;
}

/** Entries newest first. The id orders them: it is taken as each entry is written. */
export async function listAuditEntries(db: Queryable, filter: AuditFilter): Promise<AuditEntry[]> {
  const { rows } = await db.query<AuditRow>(
    `select ${columns} from backstop.audit_log
     where ($1::timestamptz is null or at >= $1) and ($2::bigint is null or at >= clock_timestamp() - $2::bigint * interval '1 millisecond')
       and ($3::text is null or actor_name = $3 or actor_id = $3)
       and ($4::text[] is null or action = any($4)) and ($5::bigint is null or id < $5)
     order by id desc limit $6`,
    [
      filter.since && 'time' in filter.since ? filter.since.time : null,
      filter.since && 'agoMs' in filter.since ? filter.since.agoMs : null,
      filter.actor ?? null,
      filter.actions ?? null,
      filter.beforeId ?? null,
      filter.limit,
    ],
  );
  return rows.map(toEntry);
}

function toEntry(row: AuditRow): AuditEntry {
  return {
    id: Number(row.id),
    at: row.at,
    actor: actorOf(row),
    action: row.action,
    subject: row.subject,
    outcome: row.outcome,
    errorCode: row.error_code,
    details: row.details,
  };
}

function actorOf(row: AuditRow): AuditActor {
  const address = row.actor_address;
  if (row.actor_kind === 'user') return { kind: 'user', id: row.actor_id ?? '', name: row.actor_name, role: row.actor_role as ApiTokenRole | null, address, client: row.client };
  if (row.actor_kind === 'token') return { kind: 'token', id: row.actor_id ?? '', name: row.actor_name, role: row.actor_role as ApiTokenRole, address, client: row.client };
  if (row.actor_kind === 'cli') return { kind: 'cli', name: row.actor_name, address, client: 'cli' };
  return { kind: 'system', name: row.actor_name, address, client: 'scheduler' };
}
