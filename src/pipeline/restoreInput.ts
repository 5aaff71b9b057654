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
  pgTools?: PgToolSearch;
  tmpDir?: string;
  signal?: AbortSignal;
  onEvent?: (kind: string, message: string) => void;
}

export interface RestoreProgress {
  phase: 'verifying' | 'restoring' | 'checking';
  bytesRead: number;
  bytesTotal: number;
  elapsedMs: number;
}

export interface RestoreResult {
  tablesChecked: number;
  bytesRestored: number;
  pgRestoreVersion: string;
  /** Where the time went (ms from the start): spool verified, pg_restore done, rows checked. */
  timings?: { spooledMs: number; pgRestoreDoneMs: number; checkedMs: number };
}
