import { createHash, randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { addAbortSignal, pipeline, Readable, Transform } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PRIVATE_ENDPOINTS_SETTING } from '../core/addressClass.ts';
import { BackstopError } from '../core/errors.ts';
import { guardedS3RequestHandler } from '../net/outboundGuard.ts';
import { parseS3Url, partSizeFor } from './s3Url.ts';
import type { ListedObject, MultipartUploadState, PutOptions, Store, StoredObject } from './store.ts';

/** User metadata naming the `put` call that wrote an object, so a failed put deletes only its own object. */
const PUT_ID_METADATA = 'backstop-put-id';
/** Parts uploaded in parallel; memory stays under about (queue size + 2) × part size per put (one filling, one being joined). */
const UPLOAD_QUEUE_SIZE = 2;
const DELETE_CONCURRENCY = 8;
/** When to look for an object whose creating request was cancelled in flight (ms after the previous look). */
const LATE_WRITE_CHECKS_MS = [0, 150, 300, 550];

export interface S3StoreTuning {
  /** ListObjectsV2 page size (S3 caps it at 1000); tests lower it to exercise pagination. */
  listPageSize?: number;
}

/**
 * Store on AWS S3 or an S3-compatible service (Cloudflare R2, Backblaze B2, MinIO).
 * URL form and options: see `parseS3Url`. Credentials come only from the environment
 * (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in `env`) or, when those
 * are absent, from the AWS SDK's default provider chain (profiles, SSO, instance roles).
 * BACKSTOP_ALLOW_PRIVATE_ENDPOINTS comes from `env` when it is set there, else from process.env.
 */
export function s3Store(storeUrl: string, env: NodeJS.ProcessEnv = process.env, tuning: S3StoreTuning = {}): Store {
  const location = parseS3Url(storeUrl, env);
  const { bucket: Bucket, keyPrefix, printableUrl: url } = location;
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  const client = new S3Client({
    region: location.region,
    ...(location.endpoint !== undefined && { endpoint: location.endpoint }),
    forcePathStyle: location.forcePathStyle,
    ...(accessKeyId &&
      secretAccessKey && {
        credentials: { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN && { sessionToken: env.AWS_SESSION_TOKEN }) },
      }),
    // Since SDK 3.729 the default is to send CRC32 checksums on every upload and to demand
    // them on downloads; R2, B2 and many MinIO versions reject or lack them. Checksums are
    // then sent only where the S3 API requires one.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // No socket idle timeout: a GetObject body read by a slow consumer (pg_restore) sits
    // idle under backpressure, and an idle timeout would cut it. The agents connect only to
    // addresses the outbound guard allows (a custom endpoint on a private address needs
    // BACKSTOP_ALLOW_PRIVATE_ENDPOINTS).
    requestHandler: guardedS3RequestHandler(PRIVATE_ENDPOINTS_SETTING in env ? env : process.env, 10_000),
  });

  const objectKey = (key: string): string => {
    if (key === '' || key.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
      throw new BackstopError('INVALID_INPUT', `Object key "${key}" must be a relative path of non-empty segments without "." or "..".`);
    }
    return keyPrefix + key;
  };

  /** Removes what a failed put may have left; returns what could not be cleaned up. */
  async function cleanUpFailedPut(guard: GuardedClient, Key: string, putId: string, uploaded: boolean): Promise<string[]> {
    const problems: string[] = [];
    await guard.idle();
    for (const uploadId of guard.uploadIds) {
      try {
        await guard.abortUpload(uploadId);
      } catch (error) {
        if ((error as Error).name !== 'NoSuchUpload') {
          problems.push(
            `multipart upload ${uploadId} could not be aborted (${describeS3Error(error, false)}); its parts stay billed until a bucket lifecycle rule "AbortIncompleteMultipartUpload" removes them`,
          );
        }
      }
    }
    // A PutObject or CompleteMultipartUpload cancelled on our side (or retried) may still
    // complete on the server: once every byte has left, the server commits whether or not we
    // wait for its answer. Look for the object a few times over about a second, and delete it
    // only if this put wrote it. A commit later than that leaves an object that no manifest
    // names, which garbage collection removes.
    if (uploaded || guard.objectMayExist()) {
      for (const wait of uploaded ? [0] : LATE_WRITE_CHECKS_MS) {
        if (wait > 0) await delay(wait);
        try {
          const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
          if (head.Metadata?.[PUT_ID_METADATA] === putId) {
            await client.send(new DeleteObjectCommand({ Bucket, Key }));
            break;
          }
        } catch (error) {
          if (!isMissingObject(error)) {
            problems.push(`the object may have been written and could not be checked (${describeS3Error(error, false)})`);
            break;
          }
        }
      }
    }
    return problems;
  }

  return {
    url,
    buffersParts: true,

    async put(key: string, body: Readable, options: PutOptions = {}): Promise<StoredObject> {
      const { signal, onProgress, expectedBytes } = options;
      const Key = objectKey(key);
      if (signal?.aborted) {
        body.destroy();
        throw signal.reason;
      }
      const putId = randomUUID();
      const hash = createHash('sha256');
      let size = 0;
      let bodyError: unknown;
      body.on('error', (error) => {
        bodyError ??= error;
      });
      const measure = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          size += chunk.length;
          onProgress?.(size);
          callback(null, chunk);
        },
      });
      // Errors reach the upload through `measure` (pipeline destroys it with the body's error).
      pipeline(body, measure, () => {});

      const guard = guardClient(client, Bucket, Key, options.onMultipartUpload);
      const upload = new Upload({
        client: guard.client,
        params: {
          Bucket,
          Key,
          Body: measure,
          ContentType: 'application/octet-stream',
          Metadata: { [PUT_ID_METADATA]: putId },
        },
        partSize: partSizeFor(location.partSizeBytes, expectedBytes),
        queueSize: UPLOAD_QUEUE_SIZE,
        leavePartsOnError: false,
      });
      const stop = (): void => {
        guard.stop();
        void upload.abort();
      };
      signal?.addEventListener('abort', stop, { once: true });
      let uploaded = false;
      try {
        await upload.done();
        uploaded = true;
        const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
        if (head.ContentLength !== size) {
          throw new Error(`streamed ${size} bytes but the store holds ${head.ContentLength ?? 'no'} bytes`);
        }
        return { key, size, sha256: hash.digest('hex') };
      } catch (error) {
        const cause = signal?.aborted ? signal.reason : (bodyError ?? error);
        stop();
        measure.destroy();
        body.destroy();
        const leftovers = await cleanUpFailedPut(guard, Key, putId, uploaded);
        if (signal?.aborted) throw signal.reason;
        const leftoverNote = leftovers.length === 0 ? '' : ` Cleanup was incomplete: ${leftovers.join('; ')}.`;
        throw new BackstopError('STORE_WRITE_FAILED', `Could not write ${key} to ${url}: ${describeS3Error(cause)}.${leftoverNote}`, {
          cause,
        });
      } finally {
        signal?.removeEventListener('abort', stop);
      }
    },

    async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
      const Key = objectKey(key);
      try {
        const response = await client.send(new GetObjectCommand({ Bucket, Key }), { abortSignal: options.signal });
        const body = response.Body;
        if (!(body instanceof Readable)) throw new Error('the response carries no readable body');
        return options.signal === undefined ? body : addAbortSignal(options.signal, body);
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (isMissingObject(error)) {
          throw new BackstopError('STORE_READ_FAILED', `Object ${key} does not exist in ${url}.`, { cause: error });
        }
        throw new BackstopError('STORE_READ_FAILED', `Could not read ${key} from ${url}: ${describeS3Error(error)}.`, { cause: error });
      }
    },

    async stat(key: string) {
      const Key = objectKey(key);
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
        return { size: head.ContentLength ?? 0 };
      } catch (error) {
        if (isMissingObject(error)) return null;
        throw new BackstopError('STORE_READ_FAILED', `Could not look up ${key} in ${url}: ${describeS3Error(error)}.`, { cause: error });
      }
    },

    async *list(prefix: string): AsyncIterable<ListedObject> {
      let ContinuationToken: string | undefined;
      do {
        let page: ListObjectsV2CommandOutput;
        try {
          page = await client.send(new ListObjectsV2Command({ Bucket, Prefix: keyPrefix + prefix, ContinuationToken, MaxKeys: tuning.listPageSize }));
        } catch (error) {
          throw new BackstopError('STORE_READ_FAILED', `Could not list "${prefix}" in ${url}: ${describeS3Error(error)}.`, { cause: error });
        }
        for (const item of page.Contents ?? []) {
          // Keys ending in "/" are folder placeholders made by web consoles, not objects.
          if (item.Key === undefined || item.Key.endsWith('/')) continue;
          yield { key: item.Key.slice(keyPrefix.length), size: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0) };
        }
        if (page.IsTruncated === true && page.NextContinuationToken === undefined) {
          throw new BackstopError('STORE_READ_FAILED', `Listing "${prefix}" in ${url} was truncated without a continuation token.`);
        }
        ContinuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } while (ContinuationToken !== undefined);
    },

    async delete(keys: string[]): Promise<void> {
      // One DeleteObject per key rather than DeleteObjects: DeleteObjects must carry a
      // checksum header, and which one (Content-MD5 or CRC32) depends on the provider.
      const pending = keys.map((key) => ({ key, Key: objectKey(key) }));
      const failures: string[] = [];
      const worker = async (): Promise<void> => {
        for (let item = pending.shift(); item !== undefined; item = pending.shift()) {
          try {
            await client.send(new DeleteObjectCommand({ Bucket, Key: item.Key }));
          } catch (error) {
            if (!isMissingObject(error)) failures.push(`${item.key}: ${describeS3Error(error)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, keys.length) }, worker));
      if (failures.length > 0) {
        const shown = failures.slice(0, 5).join('; ');
        const more = failures.length > 5 ? ` and ${failures.length - 5} more` : '';
        throw new BackstopError('STORE_WRITE_FAILED', `Could not delete ${failures.length} of ${keys.length} objects from ${url}: ${shown}${more}.`);
      }
    },

    async abortMultipartUpload(key: string, uploadId: string): Promise<'aborted' | 'gone'> {
      try {
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: objectKey(key), UploadId: uploadId }));
        return 'aborted';
      } catch (error) {
        if ((error as Error).name === 'NoSuchUpload') return 'gone';
        throw new BackstopError('STORE_WRITE_FAILED', `Could not abort multipart upload ${uploadId} of ${key} in ${url}: ${describeS3Error(error)}.`, {
          cause: error,
        });
      }
    },

    async close() {
      client.destroy();
    },
  };
}

interface GuardedClient {
  /** The client handed to `Upload`: it sends through the real client, but can be stopped. */
  client: S3Client;
  /** Ids of every multipart upload this put created. */
  uploadIds: Set<string>;
  /** Cancels requests in flight and refuses new ones, except AbortMultipartUpload. */
  stop(): void;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
  /** Aborts a multipart upload once, however many times it is asked (Upload asks too). */
  abortUpload(uploadId: string): Promise<unknown>;
  /**
   * Whether a request that creates the object (PutObject, CompleteMultipartUpload) may have
   * succeeded on the server. Only an error answer to a single attempt proves it did not.
   */
  objectMayExist(): boolean;
}

/**
 * `Upload.abort()` only stops the upload from starting new parts: requests in flight run to
 * completion in the background, and a PutObject or CompleteMultipartUpload can land after the
 * caller was told the put failed. Routing Upload's requests through this guard lets a put
 * cancel them, wait until none is left, and know every upload id it must abort.
 */
function guardClient(client: S3Client, Bucket: string, Key: string, onMultipartUpload?: PutOptions['onMultipartUpload']): GuardedClient {
  const stopper = new AbortController();
  const inFlight = new Set<Promise<unknown>>();
  const uploadIds = new Set<string>();
  const aborts = new Map<string, Promise<unknown>>();
  let objectMayExist = false;
  // The caller's record of the upload (a run event) is best effort: it never fails the put.
  const notify = async (uploadId: string, state: MultipartUploadState): Promise<void> => {
    try {
      await onMultipartUpload?.({ uploadId, state });
    } catch {
      // Recorded nowhere: a lifecycle rule is then the only cleanup, as without the record.
    }
  };

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    promise.then(
      () => inFlight.delete(promise),
      () => inFlight.delete(promise),
    );
    return promise;
  };

  const abortOnce = (command: AbortMultipartUploadCommand): Promise<unknown> => {
    const uploadId = command.input.UploadId ?? '';
    let pending = aborts.get(uploadId);
    if (pending === undefined) {
      pending = track(
        client.send(command).then(async (output) => {
          await notify(uploadId, 'aborted');
          return output;
        }),
      );
      aborts.set(uploadId, pending);
    }
    return pending;
  };

  const send = (command: unknown, options?: Record<string, unknown>): Promise<unknown> => {
    if (command instanceof AbortMultipartUploadCommand) return abortOnce(command);
    if (stopper.signal.aborted) {
      return Promise.reject(Object.assign(new Error('Upload stopped.'), { name: 'AbortError' }));
    }
    if (command instanceof CreateMultipartUploadCommand) {
      // Never cancelled half-way: its answer is the only way to learn the upload id that must
      // then be aborted; cancelling it could orphan an upload we cannot name.
      // The id is recorded before Upload learns it, so before any part is sent.
      const created = client.send(command, options).then(async (output) => {
        if (output.UploadId !== undefined) {
          uploadIds.add(output.UploadId);
          await notify(output.UploadId, 'started');
        }
        return output;
      });
      return track(created);
    }
    const sent = track(
      client.send(command as never, { ...options, abortSignal: stopper.signal }).then(async (output: unknown) => {
        if (command instanceof CompleteMultipartUploadCommand && command.input.UploadId) await notify(command.input.UploadId, 'completed');
        return output;
      }),
    );
    if (command instanceof PutObjectCommand || command instanceof CompleteMultipartUploadCommand) {
      objectMayExist = true;
      sent.then(
        () => {},
        (error: unknown) => {
          const attempts = (error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
          if (httpStatusOf(error) !== undefined && attempts <= 1) objectMayExist = false;
        },
      );
    }
    return sent;
  };

  return {
    client: Object.create(client, { send: { value: send } }) as S3Client,
    uploadIds,
    stop: () => stopper.abort(),
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    objectMayExist: () => objectMayExist,
    abortUpload(uploadId: string) {
      return abortOnce(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId }));
    },
  };
}

const NETWORK_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH']);

/** True for "no such object": NoSuchKey from GET, a bare 404 from HEAD (which has no body). */
function isMissingObject(error: unknown): boolean {
  const { name } = error as Error;
  if (name === 'NoSuchKey' || name === 'NotFound') return true;
  return httpStatusOf(error) === 404 && name !== 'NoSuchBucket' && name !== 'NoSuchUpload';
}

function httpStatusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** A one-line description of an SDK or network error, with what to check next when `hint`. */
function describeS3Error(error: unknown, hint = true): string {
  if (!(error instanceof Error)) return String(error);
  // Node reports a failed connection to a host with several addresses as an AggregateError with no message.
  const first = error instanceof AggregateError && error.message === '' && error.errors[0] instanceof Error ? error.errors[0] : error;
  const status = httpStatusOf(first);
  const code = (first as NodeJS.ErrnoException).code;
  // HEAD answers have no body, so the SDK knows only the status: its error is named "Unknown" or after the status.
  const vague = first.message === '' || first.message === 'UnknownError' || first.name === 'Unknown';
  let text = (vague ? (status !== undefined ? (STATUS_CODES[status] ?? first.name) : first.name) : first.message).replace(/\.+$/, '');
  if (status !== undefined) text += ` (HTTP ${status}${text.includes(first.name) || first.name === 'Unknown' ? '' : ` ${first.name}`})`;
  if (!hint) return text;
  if (first.name === 'CredentialsProviderError') {
    return `${text}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure an AWS profile`;
  }
  if (status === 401 || status === 403 || ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied'].includes(first.name)) {
    return `${text}. Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the key's permissions on the bucket`;
  }
  if (first.name === 'NoSuchBucket') return `${text}. Check the bucket name and region, or create the bucket`;
  if (code !== undefined && NETWORK_ERROR_CODES.has(code)) return `${text}. Check the endpoint and that the store is reachable`;
  return text;
}
