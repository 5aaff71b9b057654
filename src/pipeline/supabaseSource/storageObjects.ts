import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BackstopError } from '../../core/errors.ts';
import type { Manifest, ManifestFile } from '../../core/manifest.ts';
import type { Store } from '../../storage/store.ts';
import type { AgeIdentity } from '../age.ts';
import { storeStream, type RunEventSink } from '../backup.ts';
import { fileExtension, type CompressionSettings } from '../compression.ts';
import { assertCanDecrypt, spoolVerifiedFile } from '../spoolVerifiedFile.ts';
import type { StorageEndpoint } from './storageEndpoint.ts';

/**
 * Supabase Storage objects in a backup: one artifact file per object, under
 * `storage/<bucket>/<key>` (+ `.zst`, + `.age`), each through the same compress → encrypt →
 * hash → store path as the SQL files and listed in the manifest with its size, SHA-256 and
 * the object's bucket, exact key and content type.
 *
 * One file per object rather than one archive: each object is checked on its own before it is
 * restored, one damaged object costs only itself, a single object comes back with
 * `zstd -d` (and `age -d`) alone, and the manifest's file list is the object list. The price
 * is a request per object, and a manifest that grows by about 300 bytes per object (it is
 * capped at 16 MiB: some 50,000 objects per backup).
 */

/** Artifact file name of an object. Injective: `%` is escaped, and only then `.`, `..` and empty segments. */
export function storageFileName(bucket: string, key: string, suffix: string): string {
  const segment = (text: string) => {
    const escaped = text.replaceAll('%', '%25');
    return escaped === '' ? '%' : escaped === '.' ? '%2E' : escaped === '..' ? '%2E%2E' : escaped;
  };
  return `storage/${segment(bucket)}/${key.split('/').map(segment).join('/')}${suffix}`;
}

export interface StorageBackupInput {
  endpoint: StorageEndpoint;
  store: Store;
  prefix: string;
  compression: CompressionSettings;
  /** Parsed age recipients; empty: not encrypted. */
  recipients: string[];
  signal: AbortSignal;
  onEvent?: RunEventSink;
  /** Called with the bytes stored so far, all objects together. */
  onStoredBytes?: (bytes: number) => void;
}

export async function backupStorageObjects(input: StorageBackupInput): Promise<{ files: ManifestFile[]; buckets: string[] }> {
  const suffix = `${fileExtension(input.compression.algorithm)}${input.recipients.length > 0 ? '.age' : ''}`;
  const buckets = await input.endpoint.listBuckets();
  const files: ManifestFile[] = [];
  let storedTotal = 0;
  for (const bucket of buckets) {
    let objects = 0;
    let bytes = 0;
    for await (const listed of input.endpoint.listObjects(bucket)) {
      input.signal.throwIfAborted();
      const object = await input.endpoint.getObject(bucket, listed.key, input.signal);
      const name = storageFileName(bucket, listed.key, suffix);
      const stored = await storeStream({
        store: input.store,
        key: input.prefix + name,
        content: object.body,
        compression: input.compression,
        recipients: input.recipients,
        signal: input.signal,
        onEvent: input.onEvent,
        onStoredBytes: (bytes) => input.onStoredBytes?.(storedTotal + bytes),
      });
      storedTotal += stored.size;
      // A body cut short would otherwise be stored as if it were the object.
      if (object.size !== undefined && stored.uncompressedSize !== object.size) {
        throw new BackstopError('STORE_READ_FAILED', `Supabase Storage sent ${stored.uncompressedSize} of the ${object.size} bytes of "${listed.key}" in bucket "${bucket}".`);
      }
      files.push({
        name,
        role: 'storage',
        format: 'object',
        size: stored.size,
        sha256: stored.sha256,
        uncompressedSize: stored.uncompressedSize,
        object: { bucket, key: listed.key, ...(object.contentType ? { contentType: object.contentType } : {}) },
      });
      objects++;
      bytes += stored.uncompressedSize;
    }
    input.onEvent?.('storage_stored', `Supabase Storage bucket "${bucket}": ${objects} object(s), ${bytes} bytes`, { bucket, objects, bytes });
  }
  return { files, buckets };
}

export interface StorageRestoreInput {
  endpoint: StorageEndpoint;
  store: Store;
  prefix: string;
  manifest: Manifest;
  identities?: AgeIdentity[];
  signal: AbortSignal;
  tmpDir?: string;
  onEvent?: (kind: string, message: string) => void;
}

export function storageFilesOf(manifest: Manifest): ManifestFile[] {
  return manifest.files.filter((file) => file.role === 'storage');
}

/**
 * Writes a backup's Storage objects back through the S3 endpoint, each into its bucket
 * (created when missing) under its exact key, with its content type. Each object is checked
 * against the manifest (size, SHA-256, decompressed size) while it is spooled, before it is
 * uploaded; a damaged one stops the restore with ARTIFACT_CORRUPT. Uploads overwrite, so
 * running the restore again after a failure is safe.
 */
export async function restoreStorageObjects(input: StorageRestoreInput): Promise<{ objects: number; bytes: number; buckets: string[] }> {
  const files = storageFilesOf(input.manifest);
  if (files.length === 0 && !input.manifest.storage) {
    throw new BackstopError('INVALID_INPUT', `The backup in ${input.prefix} holds no Supabase Storage objects (it was taken without --with-storage).`);
  }
  assertCanDecrypt(input.manifest, input.identities);
  for (const file of files) {
    if (!file.object) throw new BackstopError('ARTIFACT_CORRUPT', `${file.name} is a storage file without its bucket and key in the manifest.`);
  }
  const buckets = [...new Set([...(input.manifest.storage?.buckets ?? []), ...files.map((file) => file.object!.bucket)])].sort();
  for (const bucket of buckets) await input.endpoint.ensureBucket(bucket);
  const spoolDir = await fs.mkdtemp(path.join(input.tmpDir ?? os.tmpdir(), 'backstop-storage-'));
  let bytes = 0;
  try {
    for (const [index, file] of files.entries()) {
      const spoolPath = path.join(spoolDir, String(index));
      bytes += await spoolVerifiedFile({ store: input.store, prefix: input.prefix, file, manifest: input.manifest, spoolPath, signal: input.signal, identities: input.identities });
      await input.endpoint.putObject(file.object!.bucket, file.object!.key, createReadStream(spoolPath), {
        contentType: file.object!.contentType,
        signal: input.signal,
      });
      await fs.rm(spoolPath, { force: true });
    }
  } finally {
    await fs.rm(spoolDir, { recursive: true, force: true });
  }
  input.onEvent?.('storage_restored', `restored ${files.length} Supabase Storage object(s) (${bytes} bytes) into ${buckets.length} bucket(s)`);
  return { objects: files.length, bytes, buckets };
}
