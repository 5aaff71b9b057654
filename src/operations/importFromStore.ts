import fs from 'node:fs/promises';
import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import { openStore } from '../storage/openStore.ts';
import { importBackups, type ImportOutcome } from './importBackups.ts';

/**
 * A local store that does not exist holds nothing to import: a mistyped path would otherwise
 * import 0 backups and succeed. (A backup creates its folder; an import only reads.)
 */
async function assertFolderExists(storeUrl: string): Promise<void> {
  // A local store's url is `file://` and its absolute path, as is (see localStore).
  if (!storeUrl.startsWith('file://')) return;
  const folder = storeUrl.slice('file://'.length);
  const isFolder = await fs.stat(folder).then(
    (stat) => stat.isDirectory(),
    () => false,
  );
  if (!isFolder) throw new BackstopError('STORE_READ_FAILED', `No folder at ${folder}: check the path of the store to import from.`);
}

/**
 * Rebuilds catalog entries from the manifests in a store (after losing the catalog): every
 * complete backup found where it belongs becomes the succeeded run it was. The store is opened
 * (and its URL checked) before the catalog is queried.
 */
export async function importFromStore(db: Queryable, storeUrl: string): Promise<{ outcome: ImportOutcome; storeUrl: string }> {
  const store = await openStore(storeUrl);
  try {
    await assertFolderExists(store.url);
    return { outcome: await importBackups(db, store), storeUrl: store.url };
  } finally {
    await store.close();
  }
}
