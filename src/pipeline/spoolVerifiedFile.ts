import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackstopError } from '../core/errors.ts';
import type { Manifest, ManifestFile } from '../core/manifest.ts';
import type { Store } from '../storage/store.ts';
import { createAgeDecryptStream, type AgeIdentity } from './age.ts';
import { createDecompressor } from './compression.ts';
import { CustomArchiveScanner, writeDataOffsets } from './customArchiveScanner.ts';

/**
 * Streams one stored file through its digest check, decryption and decompression into
 * `spoolPath`, and returns its plain size. It throws ARTIFACT_CORRUPT unless the stored bytes
 * have the manifest's size and SHA-256 and decompress to the manifest's size, so nothing
 * runs on a file that is not exactly what the backup wrote.
 */
export async function spoolVerifiedFile(input: {
  store: Store;
  prefix: string;
  file: ManifestFile;
  manifest: Manifest;
  spoolPath: string;
  signal: AbortSignal;
  identities?: AgeIdentity[];
  /** Called with the number of stored bytes read so far. */
  onBytes?: (storedBytes: number) => void;
  /** The scanner to follow a custom-format archive with (one is made when not given). */
  scanner?: CustomArchiveScanner;
}): Promise<number> {
  const { store, prefix, file } = input;
  const hash = createHash('sha256');
  let storedBytes = 0;
  let plainBytes = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      storedBytes += chunk.length;
      input.onBytes?.(storedBytes);
      callback(null, chunk);
    },
  });
  // pg_dump wrote the archive to a pipe, so its TOC has no data offsets; the scanner finds
  // them on the way past so that pg_restore --jobs can seek (see customArchiveScanner.ts).
  const scanner = file.format === 'pg_dump-custom' ? (input.scanner ?? new CustomArchiveScanner()) : null;
  const counting = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      plainBytes += chunk.length;
      scanner?.write(chunk);
      callback(null, chunk);
    },
  });
  const decompressor = createDecompressor(input.manifest.compression.algorithm);
  try {
    await pipeline(
      await store.get(prefix + file.name),
      hashing,
      ...(input.manifest.encryption ? [createAgeDecryptStream(input.identities ?? [])] : []),
      ...(decompressor ? [decompressor] : []),
      counting,
      // A 4 MiB buffer lets the decompressor run ahead while a write is in flight; with the
      // default 16 KiB every chunk waits for the previous write.
      createWriteStream(input.spoolPath, { mode: 0o600, highWaterMark: 4 << 20 }),
      { signal: input.signal },
    );
  } catch (error) {
    input.signal.throwIfAborted();
    // A wrong identity is the finding, whatever the bytes are.
    if (error instanceof BackstopError && error.code === 'INVALID_INPUT') throw error;
    // A damaged file usually breaks the decompressor before its digest is known: re-read the
    // stored bytes, because the checksum is the real finding.
    const digest = await digestOf(store, prefix + file.name);
    if (digest.sha256 !== file.sha256 || digest.size !== file.size) throw checksumMismatch(prefix, file, digest);
    throw new BackstopError('ARTIFACT_CORRUPT', `${prefix}${file.name} matches its checksum but cannot be decompressed: ${(error as Error).message}`, { cause: error });
  }
  const digest = { sha256: hash.digest('hex'), size: storedBytes };
  if (digest.sha256 !== file.sha256 || digest.size !== file.size) throw checksumMismatch(prefix, file, digest);
  if (plainBytes !== file.uncompressedSize) {
    throw new BackstopError('ARTIFACT_CORRUPT', `${prefix}${file.name} decompressed to ${plainBytes} bytes; the manifest says ${file.uncompressedSize}.`);
  }
  if (scanner) await writeDataOffsets(input.spoolPath, scanner);
  return plainBytes;
}

function checksumMismatch(prefix: string, file: ManifestFile, digest: { sha256: string; size: number }): BackstopError {
  return new BackstopError(
    'ARTIFACT_CORRUPT',
    `Checksum mismatch for ${prefix}${file.name}: stored ${digest.size} bytes with SHA-256 ${digest.sha256}, the manifest recorded ${file.size} bytes with ${file.sha256}. The artifact is damaged; restore another backup.`,
  );
}

/** Fails before anything is read or written when an encrypted artifact cannot be decrypted. */
export function assertCanDecrypt(manifest: Manifest, identities: AgeIdentity[] = []): void {
  if (!manifest.encryption) return;
  const recipients = manifest.encryption.recipients;
  if (identities.length === 0) {
    throw new BackstopError(
      'INVALID_INPUT',
      `This backup is encrypted with age to ${recipients.join(', ')}. Pass the matching identity file with --identity FILE.`,
    );
  }
  if (!identities.some((identity) => recipients.includes(identity.recipient))) {
    throw new BackstopError(
      'INVALID_INPUT',
      `None of the given identities can decrypt this backup: it is encrypted to ${recipients.join(', ')}, the identity file holds keys for ${identities.map((identity) => identity.recipient).join(', ')}. Pass the identity file of one of its recipients with --identity FILE.`,
    );
  }
}

export async function digestOf(store: Store, key: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of await store.get(key)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
