import { describeError } from '../core/errors.ts';
import { MANIFEST_NAME, type Manifest } from '../core/manifest.ts';
import { manifestBindsTo } from '../core/manifestBinding.ts';
import type { Queryable } from '../db/pool.ts';
import type { Artifact } from '../core/artifact.ts';
import { assertTargetName } from '../core/targetName.ts';
import { readManifest } from '../pipeline/readManifest.ts';
import type { Store } from '../storage/store.ts';

export interface ImportOutcome {
  imported: Array<{ runId: string; target: string; prefix: string }>;
  skipped: Array<{ runId: string; prefix: string; reason: string }>;
  invalid: Array<{ prefix: string; reason: string }>;
}

interface Candidate {
  prefix: string;
  manifest: Manifest;
  artifact: Artifact;
}

/**
 * Rebuilds catalog entries from the manifests found in a store: the catalog can be lost, the
 * bucket is the source of truth. Reads every manifest and checks its files are all there with
 * their recorded sizes, then inserts each backup as a succeeded run (creating targets that do
 * not exist, with no database URL: set one before backing them up again). Runs the catalog
 * already knows are left alone, whatever their status.
 *
 * A manifest is imported only where it belongs: at the prefix its own run id, attempt, target
 * and date imply (a manifest copied elsewhere would give the catalog a row whose location
 * retention and garbage collection then act on), and, when it records its target's id, under
 * that target and no other (a target deleted and created again under the same name is another
 * target: its backups are reported, not handed to it).
 */
export async function importBackups(db: Queryable, store: Store): Promise<ImportOutcome> {
  const outcome: ImportOutcome = { imported: [], skipped: [], invalid: [] };
  const candidates: Candidate[] = [];
  for await (const object of store.list('')) {
    if (object.key !== MANIFEST_NAME && !object.key.endsWith(`/${MANIFEST_NAME}`)) continue;
    const prefix = object.key.slice(0, -MANIFEST_NAME.length);
    try {
      const { manifest, sha256, size } = await readManifest(store, prefix);
      assertTargetName(manifest.target);
      const binding = manifestBindsTo(manifest, { runId: manifest.runId, attempt: manifest.attempt, targetName: manifest.target, prefix });
      if (!binding.bound) {
        outcome.invalid.push({ prefix, reason: `not imported: ${binding.reason}` });
        continue;
      }
      const missing: string[] = [];
      for (const file of manifest.files) {
        const stat = await store.stat(prefix + file.name);
        if (!stat || stat.size !== file.size) missing.push(`${file.name} (${stat ? `${stat.size} bytes, expected ${file.size}` : 'missing'})`);
      }
      if (missing.length > 0) {
        outcome.invalid.push({ prefix, reason: `incomplete: ${missing.join(', ')}` });
        continue;
      }
      candidates.push({
        prefix,
        manifest,
        artifact: {
          storeUrl: store.url,
          prefix,
          manifest: { name: MANIFEST_NAME, size, sha256 },
          files: manifest.files.map((file) => ({ name: file.name, size: file.size, sha256: file.sha256 })),
        },
      });
    } catch (error) {
      outcome.invalid.push({ prefix, reason: describeError(error).message });
    }
  }

  for (const candidate of candidates) {
    const { manifest } = candidate;
    const target = await importTarget(db, manifest, store.url);
    if ('refused' in target) {
      outcome.skipped.push({ runId: manifest.runId, prefix: candidate.prefix, reason: target.refused });
      continue;
    }
    const { rows } = await db.query<{ id: string }>(
      // backstop.record_imported_run (migration 011): the run as it was, and its `imported` event.
      `select r.id from backstop.record_imported_run(p_run_id => $1, p_target_id => $2, p_attempt => $3, p_created_at => $4::timestamptz,
         p_total_ms => $5, p_artifact => $6::jsonb, p_message => $7) r`,
      [manifest.runId, target.id, manifest.attempt, manifest.createdAt, manifest.timings.totalMs, JSON.stringify(candidate.artifact), `imported from ${store.url}/${candidate.prefix}`],
    );
    if (rows.length > 0) {
      outcome.imported.push({ runId: manifest.runId, target: manifest.target, prefix: candidate.prefix });
      continue;
    }
    const { rows: existing } = await db.query<{ status: string; prefix: string | null }>(`select status, artifact->>'prefix' as prefix from backstop.runs where id = $1`, [
      manifest.runId,
    ]);
    const known = existing[0];
    outcome.skipped.push({
      runId: manifest.runId,
      prefix: candidate.prefix,
      reason:
        known?.status === 'succeeded'
          ? known.prefix === candidate.prefix
            ? 'already in the catalog'
            : `the catalog lists another attempt of this run (${known.prefix})`
          : `the catalog records this run as ${known?.status ?? 'unknown'}; its files are not a backup`,
    });
  }
  return outcome;
}

/**
 * The target an imported backup belongs to: the one with the manifest's target id, else the
 * one of its name (created, with the manifest's id when it has one, if there is none). A target
 * of that name with another id is refused.
 */
async function importTarget(db: Queryable, manifest: Manifest, storeUrl: string): Promise<{ id: string } | { refused: string }> {
  if (manifest.targetId !== undefined) {
    const { rows } = await db.query<{ id: string }>('select id from backstop.targets where id = $1', [manifest.targetId]);
    if (rows[0]) return { id: rows[0].id };
  }
  const { rows: created } = await db.query<{ id: string }>(
    `insert into backstop.targets (id, name, database_url, store_url) values (coalesce($1::uuid, gen_random_uuid()), $2, '', $3)
     on conflict (name) do nothing returning id`,
    [manifest.targetId ?? null, manifest.target, storeUrl],
  );
  if (created[0]) return { id: created[0].id };
  const { rows: named } = await db.query<{ id: string }>('select id from backstop.targets where name = $1', [manifest.target]);
  const existing = named[0];
  if (!existing) return { refused: `target "${manifest.target}" was deleted while importing; run the import again` };
  if (manifest.targetId !== undefined && existing.id !== manifest.targetId) {
    return {
      refused:
        `the catalog's target "${manifest.target}" (id ${existing.id}) is not the target this backup was taken of (id ${manifest.targetId}): ` +
        'that one was deleted and its name reused. Restore this backup from its manifest URL, or import it into a catalog with no target of that name',
    };
  }
  return { id: existing.id };
}
