import { parseDatabaseUrl } from './databaseUrl.ts';

/**
 * What a continuous target asks of its source, decided from facts read there, before anything
 * is created on it: each refusal names the setting to change. See docs/CONTINUOUS.md.
 */

/** A table of the source as the publication plan sees it. */
export interface SourceTable {
  schema: string;
  table: string;
  /** pg_class.relreplident: d (default: the primary key), n (nothing), f (full), i (an index). */
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
  hasPrimaryKey: boolean;
}

/** A table left out of the publication, with why and the fix (continuous_streams.unprotected_tables). */
export interface UnprotectedTable {
  schema: string;
  table: string;
  reason: string;
  fix: string;
}

export interface PublicationPlan {
  /** `schema.table`, each one the stream can carry without changing what the application may do. */
  published: Array<{ schema: string; table: string }>;
  unprotected: UnprotectedTable[];
  /** Names given in `tables` that the source does not have. */
  missing: string[];
}

export function qualifiedName(table: { schema: string; table: string }): string {
  return `${table.schema}.${table.table}`;
}

/**
 * The tables a publication may hold. A table in a publication must have a replica identity
 * for PostgreSQL to let UPDATE and DELETE run on it: one without a primary key whose identity
 * is `default` or `nothing` would make the application's UPDATE and DELETE fail (55000) the
 * moment it was published. Such a table is never published: it is listed with the fix.
 */
export function planPublication(tables: SourceTable[], selected: string[] | null): PublicationPlan {
  const byName = new Map(tables.map((table) => [qualifiedName(table), table]));
  const chosen = selected === null ? tables : selected.flatMap((name) => byName.get(name) ?? []);
  const missing = selected === null ? [] : selected.filter((name) => !byName.has(name));
  const published: PublicationPlan['published'] = [];
  const unprotected: UnprotectedTable[] = [];
  for (const table of chosen) {
    const followable = table.replicaIdentity === 'f' || table.replicaIdentity === 'i' || (table.replicaIdentity === 'd' && table.hasPrimaryKey);
    if (followable) {
      published.push({ schema: table.schema, table: table.table });
      continue;
    }
    const quoted = `${quoteIdent(table.schema)}.${quoteIdent(table.table)}`;
    unprotected.push({
      schema: table.schema,
      table: table.table,
      reason:
        table.replicaIdentity === 'n'
          ? 'its replica identity is NOTHING: published, its UPDATE and DELETE would fail'
          : 'no primary key and no replica identity: published, its UPDATE and DELETE would fail',
      fix: `ALTER TABLE ${quoted} ADD PRIMARY KEY (…), or ALTER TABLE ${quoted} REPLICA IDENTITY FULL; then \`backstop target update TARGET --continuous\``,
    });
  }
  return { published, unprotected, missing };
}

function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/**
 * A connection pooler in front of the source, told by its URL: Supabase's pooler host
 * (`*.pooler.supabase.com`, Supavisor), or a pooler's well-known port (6543: Supabase's
 * transaction pooler; 6432: PgBouncer's default). Logical replication needs a session of the
 * server itself (a walsender): a pooler either refuses the replication connection or hands it
 * to a server it chooses. The rule reads the URL only, so it holds before any connection.
 */
export function poolerRefusal(databaseUrl: string): string | null {
  const url = parseDatabaseUrl(databaseUrl);
  const host = url.hostname || (url.searchParams.get('host') ?? '');
  const port = Number(url.port || url.searchParams.get('port') || 5432);
  const supabase = /^(?:[a-z0-9-]+\.)*pooler\.supabase\.com$/i.test(host);
  const poolerPort = port === 6543 || port === 6432;
  if (!supabase && !poolerPort) return null;
  const where = supabase ? `${host} is Supabase's connection pooler` : `port ${port} is a connection pooler's port (6543: Supabase's pooler, 6432: PgBouncer)`;
  return `${where}, and logical replication needs a direct connection to the database server, not a pooler. Use the direct connection: on Supabase db.<project-ref>.supabase.co:5432 (Project Settings → Database → Connection string → Direct connection); elsewhere the server's own host and port.`;
}

/** What the source says of itself, read by `readSourceFacts`. */
export interface SourceFacts {
  walLevel: string;
  role: string;
  superuser: boolean;
  replication: boolean;
  /** Member of rds_replication (RDS and Aurora grant logical replication through it). */
  rdsReplication: boolean;
  /** The server runs on RDS/Aurora (an rds_superuser role exists), or Cloud SQL (cloudsqlsuperuser). */
  platform: 'rds' | 'cloudsql' | 'other';
  maxReplicationSlots: number;
  usedReplicationSlots: number;
  maxWalSenders: number;
  usedWalSenders: number;
  /** A replication slot of this name already exists. */
  slotExists: boolean;
}

/** A permanent slot, and the temporary one each base backup takes its snapshot from. */
export const SLOTS_NEEDED = 2;

/**
 * Every reason the source cannot be a continuous target, each with its fix; empty when it can.
 * `ownSlot`: the target is continuous already, so a slot of its name is its own.
 */
export function continuousRefusals(facts: SourceFacts, slotName: string, ownSlot = false): string[] {
  const refusals: string[] = [];
  if (facts.walLevel !== 'logical') {
    const fix =
      facts.platform === 'rds'
        ? "set rds.logical_replication = 1 in the instance's (or Aurora cluster's) parameter group and reboot"
        : facts.platform === 'cloudsql'
          ? 'set the flag cloudsql.logical_decoding = on on the instance (it restarts)'
          : 'run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL (on RDS/Aurora: rds.logical_replication = 1 in the parameter group; on Cloud SQL: the flag cloudsql.logical_decoding)';
    refusals.push(`wal_level is ${facts.walLevel}, and logical decoding needs wal_level = logical: ${fix}.`);
  }
  if (!facts.superuser && !facts.replication && !facts.rdsReplication) {
    refusals.push(
      `the role ${facts.role} may not use replication: run ALTER ROLE ${quoteIdent(facts.role)} WITH REPLICATION as a superuser${facts.platform === 'rds' ? ` (on RDS/Aurora: GRANT rds_replication TO ${quoteIdent(facts.role)})` : ''}.`,
    );
  }
  const freeSlots = facts.maxReplicationSlots - facts.usedReplicationSlots + (facts.slotExists ? 1 : 0);
  if (freeSlots < SLOTS_NEEDED) {
    refusals.push(
      `max_replication_slots is ${facts.maxReplicationSlots} and ${facts.usedReplicationSlots} are in use: a continuous target needs ${SLOTS_NEEDED} free (its slot, and a temporary one during each base backup). Drop unused slots (SELECT slot_name, active FROM pg_replication_slots) or raise max_replication_slots and restart.`,
    );
  }
  if (facts.maxWalSenders - facts.usedWalSenders < SLOTS_NEEDED) {
    refusals.push(
      `max_wal_senders is ${facts.maxWalSenders} and ${facts.usedWalSenders} are in use: a continuous target needs ${SLOTS_NEEDED} free (its stream, and a base backup's snapshot). Raise max_wal_senders and restart.`,
    );
  }
  if (facts.slotExists && !ownSlot) {
    refusals.push(
      `a replication slot named ${slotName} already exists on the source (left by an earlier setup): drop it with SELECT pg_drop_replication_slot('${slotName}'), then try again.`,
    );
  }
  return refusals;
}
