import { createHash } from 'node:crypto';
import path from 'node:path';
import { pipeline, Transform, type Readable } from 'node:stream';
import { decideRunActions } from '../core/actions.ts';
import { BackstopError } from '../core/errors.ts';
import { MANIFEST_NAME } from '../core/manifest.ts';
import type { Queryable } from '../db/pool.ts';
import { getRun } from '../db/runRecords.ts';
import { readRunManifest } from '../pipeline/readRunManifest.ts';
import { openStore } from '../storage/openStore.ts';

export interface BackupFileStream {
  /** The file's bytes; errors at the end instead of ending when they do not match the manifest. */
  stream: Readable;
  /** The name as the manifest lists it (a path inside the backup's folder). */
  name: string;
  /** Its last segment, for a download's file name. */
  fileName: string;
  size: number;
  sha256: string;
}

/**
 * One file of a succeeded backup, for a download: only a file the catalog's record and the
 * backup's own manifest both list (the manifest itself included), read from the folder the
 * manifest binds to this run (readRunManifest), never a path the caller made up. The bytes
 * are hashed as they stream: a file altered in the store fails the download at its end
 * rather than completing it with other bytes.
 */
export async function openBackupFile(db: Queryable, runId: string, name: string): Promise<BackupFileStream> {
  const run = await getRun(db, runId);
  // The route lets admins only; what is left is the run's state, judged as its actions judge it.
  const verdict = decideRunActions(run, 'admin', { recipients: [], problem: null }).download;
  if (!verdict.allowed || !run.artifact) throw new BackstopError('INVALID_INPUT', verdict.allowed ? `Run ${run.id} has no stored files.` : verdict.reason);
  const artifact = run.artifact;
  const recorded = name === MANIFEST_NAME ? artifact.manifest : artifact.files.find((file) => file.name === name);
  if (!recorded) {
    throw new BackstopError('NOT_FOUND', `Backup ${run.id} has no file "${name.slice(0, 200)}"; its files are listed with the run.`, { field: 'name' });
  }
  const store = await openStore(artifact.storeUrl);
  try {
    const { manifest, sha256: manifestSha256, size: manifestSize } = await readRunManifest(store, { ...run, artifact });
    const listed = name === MANIFEST_NAME ? { size: manifestSize, sha256: manifestSha256 } : manifest.files.find((file) => file.name === name);
    if (!listed || listed.size !== recorded.size || listed.sha256 !== recorded.sha256) {
      throw new BackstopError('ARTIFACT_REJECTED', `The manifest of backup ${run.id} does not list "${name.slice(0, 200)}" as the catalog recorded it; nothing was sent.`);
    }
    const source = await store.get(artifact.prefix + name);
    const hash = createHash('sha256');
    let bytes = 0;
    // The last chunk is held back until the digest is known: with Content-Length set, a reader
    // that got every byte would take an error after them for success, so a mismatch must end
    // the response short of its length.
    let held: Buffer | null = null;
    const checked = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        bytes += chunk.length;
        if (bytes > listed.size) {
          callback(new BackstopError('ARTIFACT_CORRUPT', `${artifact.prefix}${name} is larger than the ${listed.size} bytes its manifest recorded.`));
          return;
        }
        const previous = held;
        held = chunk;
        callback(null, previous ?? undefined);
      },
      flush(callback) {
        const digest = hash.digest('hex');
        if (bytes === listed.size && digest === listed.sha256) callback(null, held ?? undefined);
        else
          callback(
            new BackstopError(
              'ARTIFACT_CORRUPT',
              `${artifact.prefix}${name} holds ${bytes} bytes with SHA-256 ${digest}; the manifest recorded ${listed.size} bytes with ${listed.sha256}.`,
            ),
          );
      },
    });
    // A reader that goes away destroys `checked`, and the pipeline then the store's stream;
    // the store closes once both are done, whichever way they ended.
    pipeline(source, checked, () => void store.close());
    return { stream: checked, name, fileName: path.posix.basename(name), size: listed.size, sha256: listed.sha256 };
  } catch (error) {
    await store.close();
    throw error;
  }
}
