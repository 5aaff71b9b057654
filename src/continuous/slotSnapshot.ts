import { connectDatabase } from '../pgtools/connectDatabase.ts';

/** A logical replication slot just created, and the snapshot at its consistent point. */
export interface SlotSnapshot {
  slot: string;
  /** The LSN from which the slot decodes: every transaction committed after it is streamed. */
  consistentLsn: string;
  /**
   * An exported snapshot seeing exactly the transactions committed before `consistentLsn`:
   * `pg_dump --snapshot` and `SET TRANSACTION SNAPSHOT` read the database as of that point.
   * Valid until `release` (the replication connection must stay idle until then).
   */
  snapshot: string;
  /** Ends the replication connection: the snapshot expires, and a temporary slot is dropped. */
  release(): Promise<void>;
}

/**
 * Creates a logical replication slot with the `pgoutput` plugin over a replication
 * connection, exporting its snapshot: a base backup dumped from that snapshot and the slot's
 * change stream meet exactly at `consistentLsn`, with nothing missing and nothing twice.
 *
 * A temporary slot serves later base backups: it only lends its snapshot and LSN, and is
 * dropped with the connection, while the target's permanent slot keeps streaming.
 */
export async function createSlotWithSnapshot(databaseUrl: string, slot: string, options: { temporary?: boolean } = {}): Promise<SlotSnapshot> {
  const client = await connectDatabase(databaseUrl, { replication: 'database' });
  try {
    // The replication grammar takes an identifier: slot names are checked by the caller
    // (src/core/changeSegment.ts slotNameFor) to be [a-z0-9_] only, and quoted besides.
    const temporary = options.temporary ? ' TEMPORARY' : '';
    const result = await client.query<{ slot_name: string; consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${client.escapeIdentifier(slot)}${temporary} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const row = result.rows[0]!;
    return {
      slot: row.slot_name,
      consistentLsn: row.consistent_point,
      snapshot: row.snapshot_name,
      release: async () => {
        await client.end().catch(() => {});
      },
    };
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
}
