import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

/**
 * The checker's own view of the stores, deliberately not Backstop's Store code: the local
 * store is read with plain file system calls (every file, `.partial-*` ones included), the
 * S3 store with the AWS SDK's own commands. What Backstop claims is compared with what is
 * really there.
 */

export interface ListedFile {
  /** Relative to the store's root (local folder, or the bucket). */
  key: string;
  size: number;
}

export interface ObjectReader {
  readonly description: string;
  /** Every object (every file) under the root. */
  list(): Promise<ListedFile[]>;
  /** The object's bytes, or null when it does not exist. */
  read(key: string): Promise<Readable | null>;
  close(): void;
}

export function localReader(root: string): ObjectReader {
  return {
    description: `local folder ${root}`,
    async list() {
      const found: ListedFile[] = [];
      const walk = async (dir: string) => {
        for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
          const full = path.join(dir, entry.name);
          if (entry.isDirectory()) await walk(full);
          else found.push({ key: path.relative(root, full).split(path.sep).join('/'), size: (await fs.stat(full)).size });
        }
      };
      await walk(root);
      return found.sort((a, b) => (a.key < b.key ? -1 : 1));
    },
    async read(key) {
      const full = path.join(root, key);
      const info = await fs.stat(full).catch(() => null);
      return info?.isFile() ? createReadStream(full) : null;
    },
    close() {},
  };
}

export function s3Reader(options: { endpoint: string; bucket: string; env: Record<string, string> }): ObjectReader {
  const client = new S3Client({
    endpoint: options.endpoint,
    region: options.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: options.env.AWS_ACCESS_KEY_ID!, secretAccessKey: options.env.AWS_SECRET_ACCESS_KEY! },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    description: `bucket ${options.bucket} at ${options.endpoint}`,
    async list() {
      const found: ListedFile[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: options.bucket, ContinuationToken: token }));
        for (const object of page.Contents ?? []) found.push({ key: object.Key!, size: object.Size ?? 0 });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return found.sort((a, b) => (a.key < b.key ? -1 : 1));
    },
    async read(key) {
      try {
        const answer = await client.send(new GetObjectCommand({ Bucket: options.bucket, Key: key }));
        return answer.Body as Readable;
      } catch (error) {
        if ((error as Error).name === 'NoSuchKey') return null;
        throw error;
      }
    },
    close: () => client.destroy(),
  };
}

/** Size and SHA-256 of a stream, hashed here. */
export async function measure(stream: Readable): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** The whole object in memory (manifests only: they are small). */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
