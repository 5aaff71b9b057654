import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import type { ArtifactFile } from '../core/artifact.ts';
import { getRun } from '../db/runRecords.ts';

export interface ArtifactListing {
  runId: string;
  storeUrl: string;
  prefix: string;
  files: ArtifactFile[];
  manifest: ArtifactFile;
  totalBytes: number;
}

/** The stored files of a run's backup, the manifest last; NOT_FOUND for a run without one. */
export async function showArtifacts(db: Queryable, runId: string): Promise<ArtifactListing> {
  const run = await getRun(db, runId);
  if (!run.artifact) {
    throw new BackstopError('NOT_FOUND', `Run ${run.id} has no backup (it is ${run.status}${run.kind === 'verify' ? ', a verification drill' : ''}).`);
  }
  const { storeUrl, prefix, files, manifest } = run.artifact;
  const totalBytes = files.reduce((sum, file) => sum + file.size, manifest.size);
  return { runId: run.id, storeUrl, prefix, files, manifest, totalBytes };
}
