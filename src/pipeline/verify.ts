import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BackstopError, describeError } from '../core/errors.ts';
import { dumpedRoles } from '../core/globalRoles.ts';
import type { Manifest } from '../core/manifest.ts';
import type { PgToolSearch } from '../pgtools/findPgTools.ts';
import type { Store } from '../storage/store.ts';
import type { AgeIdentity } from './age.ts';
import { restoreArtifact } from './restore.ts';
import { restoreCustomArchive } from './restoreCustomArchive.ts';
import { readGlobalsFile } from './serverSource/restoreServer.ts';
import type { RestoreInput } from './restoreInput.ts';
import { allowReplicaSessions, createScratchDatabase, type ScratchServer } from './scratchDatabase.ts';
import { scaffoldSupabaseProject } from './supabaseSource/scaffoldSupabase.ts';
import { digestOf } from './spoolVerifiedFile.ts';
import { countListedTables } from './sourceSnapshot.ts';

export interface VerifyInput {
  store: Store;
  prefix: string;
  manifest: Manifest;
  /**
   * A server where the drill may create (and drop) a scratch database, and a role that owns
   * only it (see createScratchDatabase): never the catalog's cluster.
   */
  scratchServer: ScratchServer;
  /**
   * The database the backup came from. Needed for Supabase backups only: the drill reads the
   * platform's managed schemas there to make its scratch database look like a new project.
   */
  sourceUrl?: string;
  /** Also compare per-table content checksums (the backup must have recorded them). */
  checksums?: boolean;
  identities?: AgeIdentity[];
  pgTools?: PgToolSearch;
  signal?: AbortSignal;
  /** Runs against the restored scratch database before it is compared: custom checks. */
  afterRestore?: (scratchUrl: string) => Promise<void>;
  onEvent?: (kind: string, message: string, data?: Record<string, unknown>) => void;
  /** The restore's progress (see restoreArtifact). */
  onProgress?: RestoreInput['onProgress'];
}

export interface TableMismatch {
  table: string;
  expectedRows: number;
  actualRows: number | null;
  expectedChecksum?: string;
  actualChecksum?: string;
}

export interface VerifyResult {
  status: 'passed' | 'failed';
  /** What was checked: stored digests, then a restore, then per-table rows (and checksums). */
  checks: { digests: boolean; restore: boolean; rows: boolean; checksums: boolean };
  tables: number;
  mismatches: TableMismatch[];
  error: { code: string; message: string } | null;
  durationMs: number;
}

/**
 * A restore drill. Stored sizes and SHA-256 digests are checked first (a damaged artifact
 * fails here, before pg_restore runs); then the backup is restored into a scratch database,
 * as a role that owns that database and nothing else, which is always dropped afterwards, and every table's row count (and, asked for, content
 * checksum) is compared with what the manifest recorded at dump time.
 */
export async function verifyArtifact(input: VerifyInput): Promise<VerifyResult> {
  const started = performance.now();
  const checks = { digests: false, restore: false, rows: false, checksums: false };
  const result = (status: VerifyResult['status'], error: VerifyResult['error'], mismatches: TableMismatch[] = []): VerifyResult => ({
    status,
    checks,
    tables: input.manifest.tables.length,
    mismatches,
    error,
    durationMs: Math.round(performance.now() - started),
  });
  if (input.checksums && input.manifest.tables.some((table) => table.checksum === undefined)) {
    throw new BackstopError(
      'INVALID_INPUT',
      'This backup recorded no per-table checksums, so --checksums cannot compare them. Enable checksums on the target (--checksums) for future backups, or verify without --checksums.',
    );
  }

  for (const file of input.manifest.files) {
    input.signal?.throwIfAborted();
    const digest = await digestOf(input.store, input.prefix + file.name);
    if (digest.size !== file.size || digest.sha256 !== file.sha256) {
      const message = `Checksum mismatch for ${input.prefix}${file.name}: stored ${digest.size} bytes with SHA-256 ${digest.sha256}, the manifest recorded ${file.size} bytes with ${file.sha256}.`;
      input.onEvent?.('verify_digest_failed', message, { file: file.name });
      return result('failed', { code: 'ARTIFACT_CORRUPT', message });
    }
  }
  checks.digests = true;
  input.onEvent?.('verify_digests_ok', `${input.manifest.files.length} file(s): sizes and SHA-256 match the manifest`);

  // Without a key that fits, pg_restore would fail on bytes it cannot read: say what is missing.
  const recipients = input.manifest.encryption?.recipients ?? [];
  if (recipients.length > 0 && !(input.identities ?? []).some((identity) => recipients.includes(identity.recipient))) {
    const message = `The backup is encrypted to ${recipients.join(', ')}, and the worker holds no identity for any of them: give the workers the identity file of one of its recipients (BACKSTOP_IDENTITY_FILE).`;
    input.onEvent?.('verify_restore_failed', message);
    return result('failed', { code: 'IDENTITY_REQUIRED', message });
  }

  if (input.manifest.profile === 'server') return verifyServer(input, checks, result);
  const supabase = input.manifest.profile === 'supabase';
  if (supabase && !input.sourceUrl) {
    throw new BackstopError('INVALID_INPUT', "A drill of a Supabase backup needs the project's database URL (the target's) to read the platform's schemas from.");
  }
  // Everything the dump holds runs as the scratch database's owner, which owns nothing else.
  const scratch = await createScratchDatabase(input.scratchServer);
  const scratchUrl = scratch.url;
  try {
    try {
      if (supabase) {
        await allowReplicaSessions(scratch);
        const scaffold = await scaffoldSupabaseProject({
          sourceUrl: input.sourceUrl!,
          scratchUrl,
          adminUrl: scratch.adminUrl,
          pgTools: input.pgTools,
          signal: input.signal,
        });
        input.onEvent?.(
          'verify_scaffolded',
          `scratch database made like a new Supabase project: ${scaffold.schemas.length} managed schema(s) from the project` +
            (scaffold.createdRoles.length > 0 ? `, role(s) ${scaffold.createdRoles.join(', ')} created on the scratch server` : '') +
            (scaffold.failures.length > 0 ? `; ${scaffold.failures.length} platform statement(s) the scratch server could not run: ${scaffold.failures.slice(0, 5).join('; ')}` : ''),
          { schemas: scaffold.schemas, createdRoles: scaffold.createdRoles, failures: scaffold.failures.slice(0, 20) },
        );
      }
      await restoreArtifact({
        store: input.store,
        prefix: input.prefix,
        manifest: input.manifest,
        toUrl: scratchUrl,
        // Roles of the source may not exist on the scratch server, and the drill's role may not
        // hand objects to them; ownership is not what a drill proves. A Supabase backup keeps
        // its grants; its roles are created by name, owners left out (see RestoreInput.scratch).
        noOwner: !supabase,
        ...(supabase ? { scratch: { adminUrl: scratch.adminUrl } } : {}),
        checkRows: false,
        identities: input.identities,
        pgTools: input.pgTools,
        signal: input.signal,
        onProgress: input.onProgress,
      });
    } catch (error) {
      input.signal?.throwIfAborted();
      const described = describeError(error);
      input.onEvent?.('verify_restore_failed', described.message);
      return result('failed', described.code === 'ARTIFACT_CORRUPT' || described.code === 'ARTIFACT_UNSAFE' ? described : { code: 'RESTORE_FAILED', message: described.message });
    }
    checks.restore = true;
    await input.afterRestore?.(scratchUrl);

    const mismatches = await compareTables(scratchUrl, input.manifest.tables, input);
    checks.rows = true;
    checks.checksums = input.checksums === true;
    if (mismatches.length > 0) return result('failed', mismatchError(mismatches), mismatches);
    return result('passed', null);
  } finally {
    await scratch.drop().catch(() => {});
  }
}

type DrillTable = Manifest['tables'][number];

/** Every listed table's rows (and checksum, when asked) in the restored database against the manifest's. */
async function compareTables(url: string, tables: DrillTable[], input: Pick<VerifyInput, 'checksums' | 'signal'>, label = ''): Promise<TableMismatch[]> {
  const restored = await countListedTables(url, tables, { checksums: input.checksums, signal: input.signal, connections: 2 });
  const mismatches: TableMismatch[] = [];
  for (const expected of tables) {
    const name = `${expected.schema}.${expected.name}`;
    const actual = restored.get(name);
    const rowsDiffer = actual?.rows !== expected.rows;
    const checksumDiffers = input.checksums === true && actual?.checksum !== expected.checksum;
    if (rowsDiffer || checksumDiffers) {
      mismatches.push({
        table: label + name,
        expectedRows: expected.rows,
        actualRows: actual?.rows ?? null,
        ...(input.checksums ? { expectedChecksum: expected.checksum, actualChecksum: actual?.checksum } : {}),
      });
    }
  }
  return mismatches;
}

function mismatchError(mismatches: TableMismatch[]): { code: string; message: string } {
  const described = mismatches
    .map((m) => (m.actualRows !== m.expectedRows ? `${m.table}: ${m.actualRows ?? 'missing'} rows restored, ${m.expectedRows} at dump time` : `${m.table}: content checksum differs`))
    .join('; ');
  return { code: 'VERIFY_MISMATCH', message: `The restored backup differs from the dump: ${described}.` };
}

/**
 * A drill of a server backup: every database is restored into a scratch database of its own,
 * as that database's unprivileged owner (so without owners and grants, as any drill), and its
 * tables compared with the manifest, one database at a time. The globals file is read back
 * and its shape checked, but not run: a drill's role creates no roles on the scratch server.
 */
async function verifyServer(
  input: VerifyInput,
  checks: VerifyResult['checks'],
  result: (status: VerifyResult['status'], error: VerifyResult['error'], mismatches?: TableMismatch[]) => VerifyResult,
): Promise<VerifyResult> {
  const signal = input.signal ?? new AbortController().signal;
  const globalsFile = input.manifest.files.find((file) => file.role === 'globals');
  if (globalsFile) {
    const spoolDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-drill-globals-'));
    try {
      const { text } = await readGlobalsFile(input, globalsFile, spoolDir, signal);
      input.onEvent?.('verify_globals_ok', `${globalsFile.name}: ${dumpedRoles(text).length} role(s), each line what pg_dumpall writes (not run: a drill creates no roles)`);
    } catch (error) {
      signal.throwIfAborted();
      const described = describeError(error);
      input.onEvent?.('verify_restore_failed', described.message);
      return result('failed', described);
    } finally {
      await fs.rm(spoolDir, { recursive: true, force: true });
    }
  }
  const mismatches: TableMismatch[] = [];
  for (const database of input.manifest.databases ?? []) {
    signal.throwIfAborted();
    const tables = input.manifest.tables.filter((table) => table.database === database.name);
    const scratch = await createScratchDatabase(input.scratchServer);
    try {
      try {
        await restoreCustomArchive({
          store: input.store,
          prefix: input.prefix,
          manifest: input.manifest,
          database: database.name,
          toUrl: scratch.url,
          noOwner: true,
          checkRows: false,
          identities: input.identities,
          pgTools: input.pgTools,
          signal,
          onProgress: input.onProgress,
        });
      } catch (error) {
        signal.throwIfAborted();
        const described = describeError(error);
        const message = `Database "${database.name}": ${described.message}`;
        input.onEvent?.('verify_restore_failed', message);
        return result('failed', { code: described.code === 'ARTIFACT_CORRUPT' || described.code === 'ARTIFACT_UNSAFE' ? described.code : 'RESTORE_FAILED', message });
      }
      await input.afterRestore?.(scratch.url);
      const found = await compareTables(scratch.url, tables, input, `${database.name}/`);
      mismatches.push(...found);
      input.onEvent?.(
        found.length === 0 ? 'verify_database_ok' : 'verify_database_differs',
        `database "${database.name}": ${found.length === 0 ? `${tables.length} tables match` : `${found.length} of ${tables.length} tables differ`}`,
      );
    } finally {
      await scratch.drop().catch(() => {});
    }
  }
  checks.restore = true;
  checks.rows = true;
  checks.checksums = input.checksums === true;
  if (mismatches.length > 0) return result('failed', mismatchError(mismatches), mismatches);
  return result('passed', null);
}
