import type { Artifact } from '../core/artifact.ts';
import type { BackupProfile } from '../core/manifest.ts';
import { backupDatabase } from './backup.ts';
import type { RestoreInput, RestoreResult } from './restoreInput.ts';
import { restoreCustomArchive } from './restoreCustomArchive.ts';
import { backupSupabase, type SupabaseBackupInput } from './supabaseSource/backupSupabase.ts';
import { restoreSupabaseArtifact } from './supabaseSource/restoreSupabase.ts';

export interface ArtifactProfile {
  backup(input: SupabaseBackupInput): Promise<Artifact>;
  restore(input: RestoreInput): Promise<RestoreResult>;
}

/**
 * How each backup profile writes an artifact and restores one. The one place that knows every
 * profile: the generic backup and restore code imports none of them, so a profile can use
 * the generic code without an import cycle.
 */
export const artifactProfiles: Record<BackupProfile, ArtifactProfile> = {
  default: { backup: backupDatabase, restore: restoreCustomArchive },
  supabase: { backup: backupSupabase, restore: restoreSupabaseArtifact },
};
