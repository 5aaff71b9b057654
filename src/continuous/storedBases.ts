import { compareLsn } from '../core/changeSegment.ts';
import { MANIFEST_NAME, type Manifest } from '../core/manifest.ts';
import { manifestBindsToItsPrefix } from '../core/manifestBinding.ts';
import { readManifest } from '../pipeline/readManifest.ts';
import type { Store } from '../storage/store.ts';

/** A base backup of a continuous target, as its store holds it. */
export interface StoredBase {
  prefix: string;
  manifest: Manifest & { continuous: NonNullable<Manifest['continuous']> };
}

/**
 * The base backups of one slot of a target, from the store alone (a remote runner has no
 * catalog to ask), in consistent-LSN order: every manifest under `<target>/` (the change
 * archive under `continuous/` excepted) that binds to its own prefix and to the target's id.
 * A manifest that cannot be read or does not bind is not a base: it is skipped, not trusted.
 */
export async function listStoredBases(store: Store, target: { name: string; id: string }, slot: string): Promise<StoredBase[]> {
  const bases: StoredBase[] = [];
  for await (const object of store.list(`${target.name}/`)) {
    if (!object.key.endsWith(`/${MANIFEST_NAME}`) || object.key.startsWith(`${target.name}/continuous/`)) continue;
    const prefix = object.key.slice(0, -MANIFEST_NAME.length);
    const manifest = await readManifest(store, prefix).then(
      (read) => read.manifest,
      () => null,
    );
    if (!manifest?.continuous || manifest.continuous.slot !== slot || manifest.targetId !== target.id) continue;
    if (!manifestBindsToItsPrefix(manifest, target.name, prefix).bound) continue;
    bases.push({ prefix, manifest: { ...manifest, continuous: manifest.continuous } });
  }
  return bases.sort((a, b) => compareLsn(a.manifest.continuous.consistentLsn, b.manifest.continuous.consistentLsn));
}
