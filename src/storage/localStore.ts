import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackstopError } from '../core/errors.ts';
import { adviceForOsError } from '../core/osError.ts';
import type { ListedObject, PutOptions, Store, StoredObject } from './store.ts';

const PARTIAL_MARKER = '.partial-';

/**
 * Local-disk store. Writes go to a temporary name in the same folder, are fsynced, then
 * renamed into place and the folder fsynced, so a crash leaves either the whole object or
 * only a `.partial-*` file. Listing shows such files under their own names: a writer killed
 * mid-put (kill -9, OOM) never comes back to remove its own, so garbage collection must see
 * them to collect them with the rest of the dead run's prefix (the chaos suite found them
 * piling up while listing hid them). Nothing reads a listed key without a manifest naming it.
 */
export function localStore(root: string): Store {
  const absoluteRoot = path.resolve(root);
  const resolveKey = (key: string): string => {
    const full = path.resolve(absoluteRoot, key);
    if (full !== absoluteRoot && !full.startsWith(absoluteRoot + path.sep)) {
      throw new BackstopError('INVALID_INPUT', `Object key "${key}" escapes the store root.`);
    }
    return full;
  };

  return {
    url: `file://${absoluteRoot}`,

    async put(key: string, body: Readable, options: PutOptions = {}): Promise<StoredObject> {
      const finalPath = resolveKey(key);
      const dir = path.dirname(finalPath);
      const tempPath = `${finalPath}${PARTIAL_MARKER}${randomBytes(6).toString('hex')}`;
      const hash = createHash('sha256');
      let size = 0;
      const measure = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          size += chunk.length;
          options.onProgress?.(size);
          callback(null, chunk);
        },
      });
      try {
        await fs.mkdir(dir, { recursive: true });
        const file = createWriteStream(tempPath, { flags: 'wx', highWaterMark: 1 << 20, flush: true });
        await pipeline(body, measure, file, { signal: options.signal });
        const onDisk = await fs.stat(tempPath);
        if (onDisk.size !== size) {
          throw new Error(`wrote ${size} bytes but the file holds ${onDisk.size}`);
        }
        await fs.rename(tempPath, finalPath);
        await fsyncDirectory(dir);
        return { key, size, sha256: hash.digest('hex') };
      } catch (error) {
        // Best effort: under a path through a file (ENOTDIR) the clean-up fails too, and must not hide why.
        await fs.rm(tempPath, { force: true }).catch(() => {});
        if (options.signal?.aborted) throw options.signal.reason ?? error;
        if (error instanceof BackstopError) throw error;
        throw new BackstopError('STORE_WRITE_FAILED', `Could not write ${key} to ${absoluteRoot}: ${withAdvice(error)}`, {
          cause: error,
        });
      }
    },

    async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
      const full = resolveKey(key);
      options.signal?.throwIfAborted();
      try {
        const info = await fs.stat(full);
        if (!info.isFile()) throw new Error('not a file');
        const stream = createReadStream(full, { highWaterMark: 1 << 20 });
        return options.signal === undefined ? stream : addAbortSignal(options.signal, stream);
      } catch (error) {
        throw new BackstopError('STORE_READ_FAILED', `Could not read ${key} from ${absoluteRoot}: ${withAdvice(error)}`, {
          cause: error,
        });
      }
    },

    async stat(key: string) {
      try {
        const info = await fs.stat(resolveKey(key));
        return info.isFile() ? { size: info.size } : null;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw error;
      }
    },

    async *list(prefix: string): AsyncIterable<ListedObject> {
      const found: ListedObject[] = [];
      try {
        await walk(absoluteRoot, found);
      } catch (error) {
        throw new BackstopError('STORE_READ_FAILED', `Could not list ${absoluteRoot}: ${withAdvice(error)}`, { cause: error });
      }
      found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      for (const item of found) if (item.key.startsWith(prefix)) yield item;
    },

    async delete(keys: string[]): Promise<void> {
      for (const key of keys) {
        const full = resolveKey(key);
        await fs.rm(full, { force: true }).catch((error: unknown) => {
          throw new BackstopError('STORE_WRITE_FAILED', `Could not delete ${key} from ${absoluteRoot}: ${withAdvice(error)}`, { cause: error });
        });
        await removeEmptyParents(path.dirname(full), absoluteRoot);
      }
    },

    async close() {},
  };

  async function walk(dir: string, into: ListedObject[]): Promise<void> {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full, into);
      else if (entry.isFile()) {
        // Gone since readdir: renamed into place (a `.partial-*` file) or deleted by another process.
        const info = await fs.stat(full).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return null;
          throw error;
        });
        if (info) into.push({ key: path.relative(absoluteRoot, full).split(path.sep).join('/'), size: info.size, lastModified: info.mtime });
      }
    }
  }
}

/** An OS error's message with what to do about it (ENOTDIR, EACCES, EROFS, ENOSPC, …). */
function withAdvice(error: unknown): string {
  const advice = adviceForOsError(error);
  return `${(error as Error).message}${advice ? `: ${advice}` : ''}`;
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function removeEmptyParents(dir: string, root: string): Promise<void> {
  let current = dir;
  while (current.startsWith(root + path.sep)) {
    try {
      await fs.rmdir(current);
    } catch {
      return;
    }
    current = path.dirname(current);
  }
}
