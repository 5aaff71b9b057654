import type { Artifact } from '../core/artifact.ts';
import type { BackupProfile } from '../core/manifest.ts';
import { backupDatabase } from './backup.ts';
import { backupParallel } from './backupParallel.ts';
import type { RestoreInput, RestoreResult } from './restoreInput.ts';
import { restoreCustomArchive } from './restoreCustomArchive.ts';
import { restoreParallel } from './restoreParallel.ts';
import type { ServerBackupInput } from './serverSource/backupServer.ts';
import type { SupabaseBackupInput } from './supabaseSource/backupSupabase.ts';

/** What a backup may be given: each profile reads the part that is its own. */
export type ProfileBackupInput = SupabaseBackupInput & ServerBackupInput;

export interface ArtifactProfile {
  backup(input: ProfileBackupInput): Promise<Artifact>;
  restore(input: RestoreInput): Promise<RestoreResult>;
}

/**
 * How each backup profile writes an artifact and restores one. The one place that knows every
 * profile: the generic backup and restore code imports none of them, so a profile can use
 * the generic code without an import cycle. The Supabase profile is loaded when first used: it
 * brings the S3 client for Storage objects, about 20 MB of memory that a default backup or
 * restore would otherwise carry.
 */
export const artifactProfiles: Record<BackupProfile, ArtifactProfile> = {
  default: {
    backup: (input) => ((input.jobs ?? 1) > 1 ? backupParallel({ ...input, jobs: input.jobs! }) : backupDatabase(input)),
    restore: (input) => (input.manifest.parallel ? restoreParallel(input) : restoreCustomArchive(input)),
  },
  supabase: {
    backup: async (input) => (await import('./supabaseSource/backupSupabase.ts')).backupSupabase(input),
    restore: async (input) => (await import('./supabaseSource/restoreSupabase.ts')).restoreSupabaseArtifact(input),
  },
  server: {
    backup: async (input) => (await import('./serverSource/backupServer.ts')).backupServer(input),
    restore: async (input) => (await import('./serverSource/restoreServer.ts')).restoreServer(input),
  },
};
