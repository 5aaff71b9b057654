import { z } from 'zod';

/**
 * A path relative to an artifact's prefix: Supabase Storage objects are stored as
 * `storage/<bucket>/<key>`, whose key may hold any character. No empty, `.` or `..` segment
 * and no control character, so that a name can never leave its prefix.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: a file name with a control character is refused on purpose
export const ARTIFACT_FILE_NAME = /^(?!\/)(?!.*\/$)(?!.*\/\/)(?!(.*\/)?\.\.?(\/|$))[^\u0000-\u001f]+$/;

const artifactFile = z.strictObject({
  name: z.string().min(1).max(1024).regex(ARTIFACT_FILE_NAME),
  size: z.int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** An artifact as a runner reports it at finalize, and as the catalog then records it. */
export const reportedArtifact = z.strictObject({
  storeUrl: z.string().min(1).max(2048),
  prefix: z.string().min(1).max(1024),
  manifest: artifactFile,
  // A Supabase backup with Storage files lists every object (the manifest is capped at 16 MiB).
  files: z.array(artifactFile).min(1).max(100_000),
});
