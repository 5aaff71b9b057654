import type pg from 'pg';
import { describeDatabase } from '../core/databaseUrl.ts';
import { BackstopError } from '../core/errors.ts';
import type { SourceFacts, SourceTable } from '../core/continuousRules.ts';
import { pgErrorCode } from '../core/pgErrors.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';

/**
 * The source side of a continuous target: what the setup reads there (its settings, the
 * role's rights, its tables), and the publication and slot it creates and drops. The slot
 * itself is made by `createSlotWithSnapshot` (slotSnapshot.ts).
 */

export async function withSource<T>(databaseUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectDatabase(databaseUrl);
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** wal_level, the role's replication rights, the platform, free slots and WAL senders. */
export async function readSourceFacts(client: pg.ClientBase, slotName: string): Promise<SourceFacts> {
  const { rows } = await client.query<{
    wal_level: string;
    role: string;
    superuser: boolean;
    replication: boolean;
    rds_replication: boolean;
    rds: boolean;
    cloudsql: boolean;
    max_slots: string;
    used_slots: string;
    max_senders: string;
    used_senders: string;
    slot_exists: boolean;
  }>(
    `select current_setting('wal_level') as wal_level, current_user as role,
       r.rolsuper as superuser, r.rolreplication as replication,
       exists (select 1 from pg_roles g where g.rolname = 'rds_replication' and pg_has_role(current_user, g.oid, 'member')) as rds_replication,
       exists (select 1 from pg_roles where rolname = 'rds_superuser') as rds,
       exists (select 1 from pg_roles where rolname = 'cloudsqlsuperuser') as cloudsql,
       current_setting('max_replication_slots') as max_slots,
       (select count(*) from pg_replication_slots) as used_slots,
       current_setting('max_wal_senders') as max_senders,
       (select count(*) from pg_stat_replication) as used_senders,
       exists (select 1 from pg_replication_slots where slot_name = $1) as slot_exists
     from pg_roles r where r.rolname = current_user`,
    [slotName],
  );
  const row = rows[0]!;
  return {
    walLevel: row.wal_level,
    role: row.role,
    superuser: row.superuser,
    replication: row.replication,
    rdsReplication: row.rds_replication,
    platform: row.rds ? 'rds' : row.cloudsql ? 'cloudsql' : 'other',
    maxReplicationSlots: Number(row.max_slots),
    usedReplicationSlots: Number(row.used_slots),
    maxWalSenders: Number(row.max_senders),
    usedWalSenders: Number(row.used_senders),
    slotExists: row.slot_exists,
  };
}

/**
 * The user tables a publication could hold (ordinary tables and partitioned ones' roots, as
 * pg_dump's user tables: outside system schemas and extensions), with their replica identity.
 */
export async function readSourceTables(client: pg.ClientBase): Promise<SourceTable[]> {
  const { rows } = await client.query<{ schema: string; table: string; identity: SourceTable['replicaIdentity']; has_pk: boolean }>(
    `select n.nspname as schema, c.relname as table, c.relreplident as identity,
       exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.contype = 'p') as has_pk
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind = 'r' and not c.relispartition and c.relpersistence = 'p'
       and n.nspname not in ('pg_catalog', 'information_schema')
       and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
       and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
     order by 1, 2`,
  );
  return rows.map((row) => ({ schema: row.schema, table: row.table, replicaIdentity: row.identity, hasPrimaryKey: row.has_pk }));
}

function tableList(client: pg.ClientBase, tables: Array<{ schema: string; table: string }>): string {
  return tables.map((table) => `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.table)}`).join(', ');
}

/**
 * The publication of exactly these tables, made or made to match (a re-run of the setup
 * re-plans the tables). Creating one needs the tables' ownership (or superuser) and CREATE on
 * the database: PostgreSQL's refusal is said with that fix.
 */
export async function publishTables(client: pg.ClientBase, name: string, tables: Array<{ schema: string; table: string }>, databaseUrl: string): Promise<void> {
  const publication = client.escapeIdentifier(name);
  try {
    const { rows } = await client.query('select 1 from pg_publication where pubname = $1', [name]);
    if (rows.length > 0) await client.query(`alter publication ${publication} set table ${tableList(client, tables)}`);
    else await client.query(`create publication ${publication} for table ${tableList(client, tables)}`);
  } catch (error) {
    const code = pgErrorCode(error);
    const hint =
      code === '42501'
        ? ' The role must own the tables it publishes (or be a superuser) and have CREATE on the database: connect as the tables’ owner, or GRANT CREATE ON DATABASE and transfer ownership.'
        : '';
    throw new BackstopError('CONTINUOUS_REFUSED', `Backstop could not create the publication ${name} on ${describeDatabase(databaseUrl)}: ${(error as Error).message}.${hint}`, {
      cause: error,
    });
  }
}

/** What `dropContinuity` did on the source. */
export interface DroppedContinuity {
  slotDropped: boolean;
  publicationDropped: boolean;
}

/**
 * Drops the target's slot and publication on the source. A streamer may hold the slot (its
 * walsender is the slot's active_pid): that session is ended first, as the slot cannot be
 * dropped while a session streams it. The caller has already marked the stream stopped, so
 * the streamer does not come back for it.
 */
export async function dropContinuity(client: pg.ClientBase, slot: string, publication: string, options: { attempts?: number } = {}): Promise<DroppedContinuity> {
  let slotDropped = false;
  let inUse: unknown = null;
  for (let attempt = 0; attempt < (options.attempts ?? 20); attempt++) {
    await client.query('select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null', [slot]);
    try {
      const { rows } = await client.query<{ dropped: boolean }>('select pg_drop_replication_slot(slot_name) is not null as dropped from pg_replication_slots where slot_name = $1', [
        slot,
      ]);
      slotDropped = rows.length > 0;
      inUse = null;
      break;
    } catch (error) {
      // 55006 object_in_use: the ended walsender has not let go yet, or a streamer reconnected.
      if (pgErrorCode(error) !== '55006') throw error;
      inUse = error;
      await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
    }
  }
  if (inUse) {
    throw new BackstopError(
      'TARGET_BUSY',
      `The replication slot ${slot} stays in use by another session (${(inUse as Error).message}): stop what streams it, then try again, or drop it by hand with SELECT pg_drop_replication_slot('${slot}').`,
      { cause: inUse },
    );
  }
  const { rowCount } = await client.query('select 1 from pg_publication where pubname = $1', [publication]);
  if ((rowCount ?? 0) > 0) await client.query(`drop publication ${client.escapeIdentifier(publication)}`);
  return { slotDropped, publicationDropped: (rowCount ?? 0) > 0 };
}

/** The slot exists on the source now (a base backup checks it before its temporary slot). */
export async function slotExists(client: pg.ClientBase, slot: string): Promise<boolean> {
  const { rows } = await client.query('select 1 from pg_replication_slots where slot_name = $1', [slot]);
  return rows.length > 0;
}

/**
 * The tables a publication holds (`schema.table`, sorted), or null when there is no such
 * publication: a base backup records them, the tables its change stream follows.
 */
export async function publishedTables(client: pg.ClientBase, publication: string): Promise<string[] | null> {
  const { rowCount } = await client.query('select 1 from pg_publication where pubname = $1', [publication]);
  if ((rowCount ?? 0) === 0) return null;
  const { rows } = await client.query<{ name: string }>(`select schemaname || '.' || tablename as name from pg_publication_tables where pubname = $1 order by 1`, [publication]);
  return rows.map((row) => row.name);
}
