import { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, ListBucketsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { BackstopError } from '../../core/errors.ts';
import { guardedS3RequestHandler } from '../../net/outboundGuard.ts';
import { DEFAULT_REGION } from '../../storage/s3Url.ts';

/**
 * Supabase Storage through its S3-compatible endpoint
 * (`https://<ref>.supabase.co/storage/v1/s3`, Project Settings → Storage → S3 Connection).
 *
 * Configured from the environment only, like every other credential:
 *   SUPABASE_STORAGE_S3_ENDPOINT           the endpoint (required)
 *   SUPABASE_STORAGE_S3_REGION             the project's region (default AWS_REGION, then us-east-1)
 *   SUPABASE_STORAGE_S3_ACCESS_KEY_ID      S3 access keys made in the dashboard; default AWS_ACCESS_KEY_ID
 *   SUPABASE_STORAGE_S3_SECRET_ACCESS_KEY  default AWS_SECRET_ACCESS_KEY
 *   SUPABASE_STORAGE_S3_SESSION_TOKEN      optional
 *   SUPABASE_STORAGE_BUCKETS               optional comma-separated list; default every bucket
 *
 * Not a `Store` (src/storage/s3Store.ts): a store is one bucket under a key prefix, writes
 * `application/octet-stream`, and validates keys for Backstop's own layout, while Storage
 * objects live in many buckets whose names and keys must be kept as they are, and their
 * content type is what Storage serves them with. The SDK settings are s3Store's: path-style
 * addressing (Supabase requires it) and checksums only where the S3 API requires one.
 */
export interface StorageEndpointConfig {
  endpoint: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Only these buckets; null: all of them. */
  buckets: string[] | null;
}

export function storageEndpointFromEnv(env: NodeJS.ProcessEnv = process.env): StorageEndpointConfig {
  const endpoint = env.SUPABASE_STORAGE_S3_ENDPOINT?.trim();
  if (!endpoint) {
    throw new BackstopError(
      'INVALID_INPUT',
      'Copying Supabase Storage needs its S3 endpoint: set SUPABASE_STORAGE_S3_ENDPOINT=https://<project-ref>.supabase.co/storage/v1/s3 and S3 access keys (SUPABASE_STORAGE_S3_ACCESS_KEY_ID and SUPABASE_STORAGE_S3_SECRET_ACCESS_KEY, from Project Settings → Storage → S3 Connection).',
    );
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new BackstopError('INVALID_INPUT', `SUPABASE_STORAGE_S3_ENDPOINT is not a URL; use https://<project-ref>.supabase.co/storage/v1/s3.`);
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password) {
    throw new BackstopError(
      'INVALID_INPUT',
      'SUPABASE_STORAGE_S3_ENDPOINT must be an http(s) URL without credentials; keys go in SUPABASE_STORAGE_S3_ACCESS_KEY_ID / _SECRET_ACCESS_KEY.',
    );
  }
  const accessKeyId = env.SUPABASE_STORAGE_S3_ACCESS_KEY_ID || env.AWS_ACCESS_KEY_ID || undefined;
  const secretAccessKey = env.SUPABASE_STORAGE_S3_SECRET_ACCESS_KEY || env.AWS_SECRET_ACCESS_KEY || undefined;
  const buckets = env.SUPABASE_STORAGE_BUCKETS?.split(',')
    .map((bucket) => bucket.trim())
    .filter(Boolean);
  return {
    endpoint: `${url.origin}${url.pathname.replace(/\/+$/, '')}`,
    region: env.SUPABASE_STORAGE_S3_REGION || env.AWS_REGION || DEFAULT_REGION,
    accessKeyId,
    secretAccessKey,
    sessionToken: env.SUPABASE_STORAGE_S3_SESSION_TOKEN || (env.SUPABASE_STORAGE_S3_ACCESS_KEY_ID ? undefined : env.AWS_SESSION_TOKEN) || undefined,
    buckets: buckets && buckets.length > 0 ? buckets : null,
  };
}

export interface StorageObjectBody {
  body: Readable;
  contentType: string | undefined;
  size: number | undefined;
}

export interface StorageEndpoint {
  /** Printable, no secrets. */
  readonly url: string;
  listBuckets(): Promise<string[]>;
  listObjects(bucket: string): AsyncIterable<{ key: string; size: number }>;
  getObject(bucket: string, key: string, signal: AbortSignal): Promise<StorageObjectBody>;
  /** Creates the bucket unless it exists (a restore into a project whose data did not create it). */
  ensureBucket(bucket: string): Promise<void>;
  putObject(bucket: string, key: string, body: Readable, options: { contentType?: string; signal: AbortSignal }): Promise<void>;
  close(): void;
}

export function openStorageEndpoint(config: StorageEndpointConfig): StorageEndpoint {
  const client = new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: true,
    ...(config.accessKeyId && config.secretAccessKey
      ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey, ...(config.sessionToken ? { sessionToken: config.sessionToken } : {}) } }
      : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Only to addresses the outbound guard allows, as every S3 endpoint (src/net/outboundGuard.ts).
    requestHandler: guardedS3RequestHandler(process.env, 10_000),
  });
  const url = config.endpoint;
  const failed = (code: 'STORE_READ_FAILED' | 'STORE_WRITE_FAILED', what: string, error: unknown) =>
    new BackstopError(code, `Supabase Storage (${url}): could not ${what}: ${describe(error)}`, { cause: error });

  return {
    url,
    async listBuckets() {
      let names: string[];
      try {
        const answer = await client.send(new ListBucketsCommand({}));
        names = (answer.Buckets ?? []).map((bucket) => bucket.Name ?? '').filter(Boolean);
      } catch (error) {
        throw failed('STORE_READ_FAILED', 'list the buckets', error);
      }
      if (config.buckets === null) return names.sort();
      const missing = config.buckets.filter((bucket) => !names.includes(bucket));
      if (missing.length > 0) throw new BackstopError('INVALID_INPUT', `SUPABASE_STORAGE_BUCKETS names buckets the project does not have: ${missing.join(', ')}.`);
      return [...config.buckets].sort();
    },
    async *listObjects(bucket) {
      let ContinuationToken: string | undefined;
      do {
        let page;
        try {
          page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken }));
        } catch (error) {
          throw failed('STORE_READ_FAILED', `list bucket "${bucket}"`, error);
        }
        for (const item of page.Contents ?? []) {
          // Folder placeholders (".emptyFolderPlaceholder" objects are real and kept; "dir/" keys are not objects).
          if (item.Key !== undefined && !item.Key.endsWith('/')) yield { key: item.Key, size: item.Size ?? 0 };
        }
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (ContinuationToken !== undefined);
    },
    async getObject(bucket, key, signal) {
      try {
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
        if (!(answer.Body instanceof Readable)) throw new Error('the answer carries no body');
        return { body: answer.Body, contentType: answer.ContentType, size: answer.ContentLength };
      } catch (error) {
        signal.throwIfAborted();
        throw failed('STORE_READ_FAILED', `read "${key}" from bucket "${bucket}"`, error);
      }
    },
    async ensureBucket(bucket) {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
        return;
      } catch (error) {
        const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status !== 404 && (error as Error).name !== 'NotFound' && (error as Error).name !== 'NoSuchBucket') {
          throw failed('STORE_WRITE_FAILED', `look up bucket "${bucket}"`, error);
        }
      }
      try {
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
      } catch (error) {
        if ((error as Error).name !== 'BucketAlreadyOwnedByYou' && (error as Error).name !== 'BucketAlreadyExists') {
          throw failed('STORE_WRITE_FAILED', `create bucket "${bucket}"`, error);
        }
      }
    },
    async putObject(bucket, key, body, options) {
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: body, ContentType: options.contentType ?? 'application/octet-stream' },
        queueSize: 4,
        leavePartsOnError: false,
      });
      const stop = () => void upload.abort();
      options.signal.addEventListener('abort', stop, { once: true });
      try {
        await upload.done();
      } catch (error) {
        options.signal.throwIfAborted();
        throw failed('STORE_WRITE_FAILED', `write "${key}" to bucket "${bucket}"`, error);
      } finally {
        options.signal.removeEventListener('abort', stop);
      }
    },
    close() {
      client.destroy();
    },
  };
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const text = error.message && error.message !== 'UnknownError' ? error.message : error.name;
  const hint =
    status === 401 || status === 403 || ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied'].includes(error.name)
      ? '. Check SUPABASE_STORAGE_S3_ACCESS_KEY_ID / SUPABASE_STORAGE_S3_SECRET_ACCESS_KEY and SUPABASE_STORAGE_S3_REGION'
      : '';
  return `${text}${status ? ` (HTTP ${status})` : ''}${hint}`;
}
