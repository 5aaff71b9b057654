import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { isBackstopError } from '../src/core/errors.ts';
import type { ListedObject, Store } from '../src/storage/store.ts';

export const MIB = 1024 * 1024;

export interface TestBodyOptions {
  size: number;
  /** Stop producing after this many bytes until `release()` is called. */
  stallAt?: number;
  /** Fail with `error` once this many bytes were produced. */
  failAt?: number;
}

export interface TestBody {
  stream: Readable;
  /** Resolves once the body has produced `stallAt` bytes and is waiting for `release()`. */
  stalled: Promise<void>;
  release(): void;
  /** The error the body fails with when `failAt` is set. */
  error: Error;
  /** Bytes produced so far. */
  produced(): number;
  /** SHA-256 of everything produced (complete once the stream has ended). */
  sha256(): string;
}

/** A generated body of random bytes, streamed in 64 KiB chunks, that can stall or fail on cue. */
export function testBody({ size, stallAt, failAt }: TestBodyOptions): TestBody {
  const hash = createHash('sha256');
  const error = new Error('body failed on purpose');
  let produced = 0;
  let released = stallAt === undefined;
  let waiting = false;
  let onStalled: () => void = () => {};
  const stalled = new Promise<void>((resolve) => {
    onStalled = resolve;
  });

  const stream = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      produceNext();
    },
  });

  function produceNext(): void {
    if (failAt !== undefined && produced >= failAt) {
      stream.destroy(error);
      return;
    }
    if (!released && stallAt !== undefined && produced >= stallAt) {
      waiting = true;
      onStalled();
      return;
    }
    if (produced >= size) {
      stream.push(null);
      return;
    }
    let length = Math.min(64 * 1024, size - produced);
    if (!released && stallAt !== undefined) length = Math.min(length, stallAt - produced);
    if (failAt !== undefined) length = Math.min(length, Math.max(1, failAt - produced));
    const chunk = randomBytes(length);
    hash.update(chunk);
    produced += length;
    stream.push(chunk);
  }

  return {
    stream,
    stalled,
    release() {
      released = true;
      if (waiting) {
        waiting = false;
        produceNext();
      }
    },
    error,
    produced: () => produced,
    sha256: () => hash.copy().digest('hex'),
  };
}

export async function readAll(stream: Readable): Promise<{ size: number; sha256: string; text: string }> {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    if (size <= 4096) chunks.push(chunk);
  }
  return { size, sha256: hash.digest('hex'), text: size <= 4096 ? Buffer.concat(chunks).toString() : '' };
}

export async function listAll(store: Store, prefix: string): Promise<ListedObject[]> {
  const found: ListedObject[] = [];
  for await (const item of store.list(prefix)) found.push(item);
  return found;
}

export async function putText(store: Store, key: string, text: string) {
  return store.put(key, Readable.from([Buffer.from(text)]));
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * The behaviour every Store must have. `makeStore` returns a fresh, empty store for each test.
 *
 * Listing keys avoid "a/b-c" next to "a/b/c": s3rver (the S3 test peer) lists in directory-walk
 * order, which puts "a/b/c" first, while S3 and every store here order keys by bytes.
 */
export function storeContract(name: string, makeStore: () => Promise<{ store: Store; cleanup: () => Promise<void> }>): void {
  describe(`${name}: Store contract`, () => {
    let store: Store;
    let cleanup: () => Promise<void> = async () => {};

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('round-trips a streamed multi-megabyte body and reports its size and SHA-256', async () => {
      const body = testBody({ size: 5 * MIB + 12_345 });
      const progress: number[] = [];
      const stored = await store.put('backups/2025/run-1/dump.bin', body.stream, { onProgress: (bytes) => progress.push(bytes) });

      assert.deepEqual(stored, { key: 'backups/2025/run-1/dump.bin', size: 5 * MIB + 12_345, sha256: body.sha256() });
      assert.ok(progress.length > 1, 'progress is reported while streaming');
      assert.ok(
        progress.every((bytes, i) => i === 0 || bytes >= progress[i - 1]!),
        'progress never goes back',
      );
      assert.equal(progress.at(-1), stored.size);

      assert.deepEqual(await store.stat('backups/2025/run-1/dump.bin'), { size: stored.size });
      const read = await readAll(await store.get('backups/2025/run-1/dump.bin'));
      assert.equal(read.size, stored.size);
      assert.equal(read.sha256, stored.sha256);
    });

    it('stores an empty object', async () => {
      const stored = await store.put('empty', Readable.from([]));
      assert.deepEqual(stored, { key: 'empty', size: 0, sha256: EMPTY_SHA256 });
      assert.deepEqual(await store.stat('empty'), { size: 0 });
      assert.equal((await readAll(await store.get('empty'))).size, 0);
    });

    it('stat returns null for a missing key', async () => {
      assert.equal(await store.stat('missing/object'), null);
    });

    it('get of a missing key fails with STORE_READ_FAILED naming the key', async () => {
      await assert.rejects(store.get('missing/object.bin'), (error: unknown) => {
        assert.ok(isBackstopError(error, 'STORE_READ_FAILED'), String(error));
        assert.match(error.message, /missing\/object\.bin/);
        return true;
      });
    });

    it('lists by prefix in key order with relative keys, including nested folders', async () => {
      for (const key of ['a/1', 'a/10', 'a/2/x', 'a/2/y/z', 'ab', 'b/1']) await putText(store, key, `content of ${key}`);

      const underA = await listAll(store, 'a/');
      assert.deepEqual(
        underA.map((item) => item.key),
        ['a/1', 'a/10', 'a/2/x', 'a/2/y/z'],
      );
      assert.deepEqual(
        underA.map((item) => item.size),
        ['a/1', 'a/10', 'a/2/x', 'a/2/y/z'].map((key) => `content of ${key}`.length),
      );
      assert.ok(underA.every((item) => item.lastModified instanceof Date && !Number.isNaN(item.lastModified.getTime())));
      assert.deepEqual(
        (await listAll(store, 'a')).map((item) => item.key),
        ['a/1', 'a/10', 'a/2/x', 'a/2/y/z', 'ab'],
      );
      assert.deepEqual(
        (await listAll(store, '')).map((item) => item.key),
        ['a/1', 'a/10', 'a/2/x', 'a/2/y/z', 'ab', 'b/1'],
      );
      assert.deepEqual(
        (await listAll(store, 'a/2/')).map((item) => item.key),
        ['a/2/x', 'a/2/y/z'],
      );
      assert.deepEqual(await listAll(store, 'nothing-here/'), []);
    });

    it('overwrites an existing key', async () => {
      await putText(store, 'dir/object', 'first version, longer');
      const second = await putText(store, 'dir/object', 'second');
      assert.equal(second.size, 6);
      assert.deepEqual(await store.stat('dir/object'), { size: 6 });
      assert.equal((await readAll(await store.get('dir/object'))).text, 'second');
      assert.deepEqual(
        (await listAll(store, 'dir/')).map((item) => item.key),
        ['dir/object'],
      );
    });

    it('deletes keys, ignoring missing ones, and leaves other keys alone', async () => {
      await putText(store, 'run/1/dump', 'dump');
      await putText(store, 'run/1/manifest.json', '{}');
      await putText(store, 'run/2/dump', 'keep');

      await store.delete(['run/1/dump', 'run/1/manifest.json', 'run/1/never-written']);
      await store.delete([]);
      await store.delete(['run/1/dump']);

      assert.equal(await store.stat('run/1/dump'), null);
      assert.deepEqual(
        (await listAll(store, 'run/')).map((item) => item.key),
        ['run/2/dump'],
      );
      assert.equal((await readAll(await store.get('run/2/dump'))).text, 'keep');
    });

    it('a put aborted mid-stream rejects with the signal reason and leaves nothing behind', async () => {
      const body = testBody({ size: 6 * MIB, stallAt: 3 * MIB });
      const controller = new AbortController();
      const reason = new Error('cancelled by test');
      const put = store.put('aborted/dump.bin', body.stream, { signal: controller.signal });
      await body.stalled;
      controller.abort(reason);

      await assert.rejects(put, (error: unknown) => error === reason);
      assert.equal(await store.stat('aborted/dump.bin'), null);
      assert.deepEqual(await listAll(store, 'aborted/'), []);
    });

    it('a put with an already aborted signal rejects with its reason and writes nothing', async () => {
      const reason = new Error('cancelled before start');
      await assert.rejects(store.put('early/dump.bin', testBody({ size: MIB }).stream, { signal: AbortSignal.abort(reason) }), (error: unknown) => error === reason);
      assert.deepEqual(await listAll(store, 'early/'), []);
    });

    it('a put whose body fails mid-way rejects with STORE_WRITE_FAILED and leaves nothing behind', async () => {
      const body = testBody({ size: 6 * MIB, failAt: 2 * MIB });
      await assert.rejects(store.put('failed/dump.bin', body.stream), (error: unknown) => {
        if (error === body.error) return true;
        assert.ok(isBackstopError(error, 'STORE_WRITE_FAILED'), String(error));
        assert.match(error.message, /body failed on purpose/);
        assert.match(error.message, /failed\/dump\.bin/);
        return true;
      });
      assert.equal(await store.stat('failed/dump.bin'), null);
      assert.deepEqual(await listAll(store, 'failed/'), []);
    });

    it('a failed overwrite does not leave a partial object under the key', async () => {
      await putText(store, 'kept/object', 'complete');
      const body = testBody({ size: 3 * MIB, failAt: MIB });
      await assert.rejects(store.put('kept/object', body.stream));
      const left = await store.stat('kept/object');
      assert.ok(left === null || left.size === 'complete'.length, `found ${JSON.stringify(left)}`);
      if (left !== null) assert.equal((await readAll(await store.get('kept/object'))).text, 'complete');
    });

    it('round-trips keys with spaces and non-ASCII characters', async () => {
      const key = 'Clients & Co/été 2025/dump #1.bin';
      await putText(store, key, 'unicode');
      assert.deepEqual(await store.stat(key), { size: 7 });
      assert.equal((await readAll(await store.get(key))).text, 'unicode');
      assert.deepEqual(
        (await listAll(store, 'Clients & Co/')).map((item) => item.key),
        [key],
      );
      await store.delete([key]);
      assert.equal(await store.stat(key), null);
    });

    it('get honours its abort signal, before and while reading', async () => {
      await store.put('read/dump.bin', testBody({ size: 4 * MIB }).stream);
      const early = new Error('cancelled before reading');
      await assert.rejects(store.get('read/dump.bin', { signal: AbortSignal.abort(early) }), (error: unknown) => error === early);

      const controller = new AbortController();
      const reason = new Error('cancelled while reading');
      const stream = await store.get('read/dump.bin', { signal: controller.signal });
      let read = 0;
      await assert.rejects(
        (async () => {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            read += chunk.length;
            if (read >= 64 * 1024) controller.abort(reason);
          }
        })(),
        (error: unknown) => error === reason || (error as Error).cause === reason,
      );
      assert.ok(read < 4 * MIB, 'reading stopped early');
      assert.ok(stream.destroyed);
    });

    it('refuses keys that escape the store', async () => {
      await assert.rejects(putText(store, '../escape', 'x'), (error: unknown) => isBackstopError(error, 'INVALID_INPUT'));
      await assert.rejects(putText(store, 'a/../../escape', 'x'), (error: unknown) => isBackstopError(error, 'INVALID_INPUT'));
    });

    it('url is printable', () => {
      assert.equal(typeof store.url, 'string');
      assert.ok(store.url.length > 0);
    });
  });
}
