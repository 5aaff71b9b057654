import { importBackups, type ImportOutcome } from './importBackups.ts';
import type { Queryable } from '../db/pool.ts';
import { openStore } from '../storage/openStore.ts';

/**
 * Rebuilds catalog entries from the manifests in a store (after losing the catalog): every
 * complete backup found where it belongs becomes the succeeded run it was. The store is opened
 * (and its URL checked) before the catalog is queried.
 */
export async function importFromStore(db: Queryable, storeUrl: string): Promise<{ outcome: ImportOutcome; storeUrl: string }> {
  const store = await openStore(storeUrl);
  try {
    return { outcome: await importBackups(db, store), storeUrl: store.url };
  } finally {
    await store.close();
  }
}
