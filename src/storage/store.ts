import type { Readable } from 'node:stream';

/** What a store confirmed after writing an object. */
export interface StoredObject {
  key: string;
  size: number;
  sha256: string;
}

export interface ListedObject {
  key: string;
  size: number;
  lastModified: Date;
}

export interface PutOptions {
  signal?: AbortSignal;
  /** Called with the number of bytes accepted so far, for progress reporting. */
  onProgress?: (bytesStored: number) => void;
  /**
   * About how many bytes the object will hold, when known (a backup passes the source
   * database's size): an object store sizes its multipart parts for it.
   */
  expectedBytes?: number;
  /**
   * An object store that splits the object into a multipart upload reports the upload's id
   * when it is created (before any part is sent: the put waits for this callback), and when it
   * is completed or aborted. A process killed in between cannot abort its upload, whose parts
   * then stay stored (and billed); the run's record of the id lets garbage collection abort it.
   */
  onMultipartUpload?: (upload: { uploadId: string; state: MultipartUploadState }) => Promise<void> | void;
}

export type MultipartUploadState = 'started' | 'completed' | 'aborted';

/**
 * The one small interface every store implements. Keys are relative, `/`-separated paths.
 * `put` is all-or-nothing: an object becomes visible only once its every byte is durably
 * stored; on error or abort nothing is left under `key`.
 */
export interface Store {
  /** Printable URL with no secrets in it. */
  readonly url: string;
  /**
   * A put gathers the data into parts that wait for the network (S3 multipart): long enough
   * for V8 to promote their buffers, so the backup stream asks for full heap collections
   * while it writes (see src/pipeline/heapCollector.ts).
   */
  readonly buffersParts?: boolean;
  put(key: string, body: Readable, options?: PutOptions): Promise<StoredObject>;
  /** Throws STORE_READ_FAILED when the object is missing or unreadable. */
  get(key: string, options?: { signal?: AbortSignal }): Promise<Readable>;
  /** Size of an object, or null when it does not exist. */
  stat(key: string): Promise<{ size: number } | null>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ListedObject>;
  /** Deletes the keys; missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
  /**
   * Object stores only: aborts a multipart upload left by a put that never finished; `gone`
   * when the store knows no such upload (completed, or aborted already).
   */
  abortMultipartUpload?(key: string, uploadId: string): Promise<'aborted' | 'gone'>;
  close(): Promise<void>;
}
