import type { Manifest } from '../core/manifest.ts';
import type { PgToolSearch } from '../pgtools/findPgTools.ts';
import type { Store } from '../storage/store.ts';
import type { AgeIdentity } from './age.ts';

export interface RestoreInput {
  store: Store;
  prefix: string;
  manifest: Manifest;
  toUrl: string;
  clean?: boolean;
  jobs?: number;
  noOwner?: boolean;
  /** Restore only these schemas (pg_restore --schema). */
  schemas?: string[];
  /** Restore only tables of these names (pg_restore --table). */
  tables?: string[];
  onProgress?: (progress: RestoreProgress) => void;
  /** Compare every table's row count with the manifest afterwards (default true; a drill compares itself). */
  checkRows?: boolean;
  /** age identities, required when the manifest says the artifact is encrypted. */
  identities?: AgeIdentity[];
  /**
   * A drill's scratch database, restored into as a role that owns only it (Supabase profile):
   * the roles file is checked but not run, its roles are created by name (NOLOGIN) through
   * `adminUrl` when there is one, and the schema file's owner changes are left out.
   */
  scratch?: { adminUrl: string | null };
  /**
   * Server profile: restore only these of the backup's databases (default: every one), and
   * replace these where the destination server already has them (default: none, and an existing
   * database refuses the restore).
   */
  databases?: string[];
  replaceDatabases?: string[];
  /** Server profile: also run the globals file (roles) first (default true). */
  globals?: boolean;
  /**
   * One database of a server backup (its "dump" file and its tables), restored with
   * `pg_restore --create` through `createFrom`, a database on the same server (the server
   * profile's, per database). Without `createFrom` it is restored into `toUrl` (a drill).
   */
  database?: string;
  createFrom?: string;
  pgTools?: PgToolSearch;
  tmpDir?: string;
  signal?: AbortSignal;
  onEvent?: (kind: string, message: string) => void;
}

export interface RestoreProgress {
  phase: 'verifying' | 'restoring' | 'checking';
  /** Stored bytes read and checked against the manifest. */
  bytesRead: number;
  /** The stored size of what is restored. */
  bytesTotal: number;
  /**
   * Plain bytes the restoring tool has read of the checked spool, where the system tells
   * (see processReadBytes); otherwise they move only when the phase ends.
   */
  bytesRestored: number;
  /** The plain size of what is restored (the manifest's uncompressedSize). */
  bytesRestoredTotal: number;
  elapsedMs: number;
}

export interface RestoreResult {
  tablesChecked: number;
  bytesRestored: number;
  pgRestoreVersion: string;
  /** Server profile: the databases restored, in order. */
  databases?: string[];
  /** Where the time went (ms from the start): spool verified, pg_restore done, rows checked. */
  timings?: { spooledMs: number; pgRestoreDoneMs: number; checkedMs: number };
}
