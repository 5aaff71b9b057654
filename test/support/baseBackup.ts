import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import pg from 'pg';
import { artifactPrefix, MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, type Manifest } from '../../src/core/manifest.ts';
import type { Pool } from '../../src/db/pool.ts';
import { claimRunById, finalizeRun } from '../../src/db/runLeases.ts';
import { createRun } from '../../src/db/runRecords.ts';
import { createSlotWithSnapshot } from '../../src/continuous/slotSnapshot.ts';
import { storeStream } from '../../src/pipeline/backup.ts';
import { countTableRows } from '../../src/pipeline/sourceSnapshot.ts';
import { openStore } from '../../src/storage/openStore.ts';

export type Fingerprint = Record<string, { rows: number; md5: string }>;

/** Row count and an order-independent digest of every listed table, read by the client's current transaction. */
export async function fingerprintTables(client: pg.ClientBase, tables: string[]): Promise<Fingerprint> {
  const result: Fingerprint = {};
  for (const table of tables) {
    const { rows } = await client.query<{ rows: string; md5: string }>(`select count(*) as rows, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as md5 from ${table} t`);
    result[table] = { rows: Number(rows[0]!.rows), md5: rows[0]!.md5 };
  }
  return result;
}

/**
 * A base backup of a continuous target, as a test's scaffolding until base backups are taken
 * by the product: a temporary slot's exported snapshot (its consistent LSN is the base's),
 * `pg_dump --snapshot` of it stored through the backups' own compression and checksum path,
 * row counts in the same snapshot, a manifest carrying `continuous`, and a succeeded run
 * through the real create, claim and finalize path, with the run's base_lsn and base_slot.
 * The content of `fingerprint` tables is read in the snapshot too: what a restore of this
 * base must hold for tables the change stream does not carry.
 */
export async function takeBaseBackup(
  pool: Pool,
  input: { targetId: string; targetName: string; sourceUrl: string; storeUrl: string; slot: string; recipients?: string[]; fingerprint?: string[] },
): Promise<{ runId: string; baseLsn: string; fingerprint: Fingerprint }> {
  const run = await createRun(pool, { targetId: input.targetId, trigger: 'test', runDeadlineMs: 3_600_000 });
  const claimed = await claimRunById(pool, run.id, { leaseTtlMs: 600_000, claimedBy: 'test-base-backup' });
  const temporary = await createSlotWithSnapshot(input.sourceUrl, `backstop_base_${randomBytes(4).toString('hex')}`, { temporary: true });
  const store = await openStore(input.storeUrl);
  const reader = new pg.Client({ connectionString: input.sourceUrl });
  await reader.connect();
  try {
    const prefix = artifactPrefix(input.targetName, run.createdAt, run.id, claimed.attempt);
    await reader.query('begin isolation level repeatable read');
    await reader.query(`set transaction snapshot '${temporary.snapshot}'`);
    const dump = spawn('pg_dump', ['--format=custom', '--compress=0', `--snapshot=${temporary.snapshot}`, `--dbname=${input.sourceUrl}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => dump.on('close', resolve));
    const stored = await storeStream({
      store,
      key: `${prefix}dump.pgcustom.zst`,
      content: dump.stdout as Readable,
      compression: { algorithm: 'zstd', level: 1 },
      recipients: input.recipients ?? [],
      signal: new AbortController().signal,
    });
    if ((await exited) !== 0) throw new Error('pg_dump of the base backup failed');
    const tables = await countTableRows(reader);
    const fingerprint = await fingerprintTables(reader, input.fingerprint ?? []);
    const versions = await reader.query<{ version: string; num: string; db: string }>(
      "select current_setting('server_version') as version, current_setting('server_version_num') as num, current_database() as db",
    );
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      formatVersion: MANIFEST_VERSION,
      backstopVersion: '0.0.0-test',
      runId: run.id,
      attempt: claimed.attempt,
      target: input.targetName,
      targetId: input.targetId,
      continuous: { slot: input.slot, consistentLsn: temporary.consistentLsn },
      createdAt: run.createdAt,
      source: { serverVersion: versions.rows[0]!.version.split(' ')[0]!, serverVersionNum: Number(versions.rows[0]!.num), database: versions.rows[0]!.db },
      pgDump: { version: 'test', options: ['--format=custom', '--compress=0', `--snapshot=${temporary.snapshot}`], snapshot: true },
      compression: { algorithm: 'zstd', level: 1 },
      encryption: input.recipients?.length ? { algorithm: 'age', recipients: input.recipients } : null,
      files: [{ name: 'dump.pgcustom.zst', role: 'dump', format: 'pg_dump-custom', size: stored.size, sha256: stored.sha256, uncompressedSize: stored.uncompressedSize }],
      tables,
      timings: { dumpMs: 1, totalMs: 1 },
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2));
    await store.put(prefix + MANIFEST_NAME, Readable.from([manifestBytes]));
    await finalizeRun(pool, {
      runId: run.id,
      leaseId: claimed.leaseId,
      outcome: 'succeeded',
      error: null,
      artifact: {
        storeUrl: store.url,
        prefix,
        manifest: { name: MANIFEST_NAME, size: manifestBytes.length, sha256: createHash('sha256').update(manifestBytes).digest('hex') },
        files: [{ name: 'dump.pgcustom.zst', size: stored.size, sha256: stored.sha256 }],
      },
    });
    await pool.query('update backstop.runs set base_lsn = $2::pg_lsn, base_slot = $3 where id = $1', [run.id, temporary.consistentLsn, input.slot]);
    return { runId: run.id, baseLsn: temporary.consistentLsn, fingerprint };
  } finally {
    await reader.end().catch(() => {});
    await temporary.release();
    await store.close();
  }
}
