import { manifestProfile } from '../core/manifest.ts';
import { artifactProfiles } from './artifactProfiles.ts';
import type { RestoreInput, RestoreResult } from './restoreInput.ts';

/** Restores an artifact the way its manifest's profile was written (see artifactProfiles.ts). */
export function restoreArtifact(input: RestoreInput): Promise<RestoreResult> {
  return artifactProfiles[manifestProfile(input.manifest)].restore(input);
}
