import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackstopError } from '../core/errors.ts';
import { localStore } from './localStore.ts';
import type { Store } from './store.ts';

/**
 * A store as an absolute URL, so that it means the same thing from any folder: a plain path
 * becomes `file:///absolute/path`; a URL (any scheme, to be judged by whoever stores it) stays.
 */
export function absoluteStoreUrl(store: string, cwd: string = process.cwd()): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(store)) return store;
  return `file://${path.resolve(cwd, store)}`;
}

/**
 * Store URLs: `file:///absolute/path`, a plain path, or (see s3Store) `s3://bucket/prefix`.
 */
export async function openStore(storeUrl: string, cwd: string = process.cwd()): Promise<Store> {
  if (storeUrl.startsWith('s3://')) {
    const { s3Store } = await import('./s3Store.ts');
    return s3Store(storeUrl);
  }
  if (storeUrl.startsWith('file://')) return localStore(fileURLToPath(storeUrl));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(storeUrl)) {
    throw new BackstopError('INVALID_INPUT', `Unsupported store URL "${storeUrl.replace(/\/\/[^@/]*@/, '//*****@')}". Use file:///path, a folder path, or s3://bucket/prefix.`);
  }
  return localStore(path.resolve(cwd, storeUrl));
}
