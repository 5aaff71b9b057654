import { describeError } from '../core/errors.ts';
import { MANIFEST_NAME, type Manifest } from '../core/manifest.ts';
import type { Queryable } from '../db/pool.ts';
import type { Artifact } from '../db/runs.ts';
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
 */
export async function importBackups(db: Queryable, store: Store): Promise<ImportOutcome> {
  const outcome: ImportOutcome = { imported: [], skipped: [], invalid: [] };
  const candidates: Candidate[] = [];
  for await (const object of store.list('')) {
    if (object.key !== MANIFEST_NAME && !object.key.endsWith(`/${MANIFEST_NAME}`)) continue;
    const prefix = object.key.slice(0, -MANIFEST_NAME.length);
    try {
      const { manifest, sha256, size } = await readManifest(store, prefix);
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
    await db.query(
      `insert into backstop.targets (name, database_url, store_url) values ($1, '', $2) on conflict (name) do nothing`,
      [manifest.target, store.url],
    );
    const { rows } = await db.query<{ id: string }>(
      // backstop.record_imported_run (migration 011): the run as it was, and its `imported` event.
      `select r.id from backstop.record_imported_run(p_run_id => $1, p_target_name => $2, p_attempt => $3, p_created_at => $4::timestamptz,
         p_total_ms => $5, p_artifact => $6::jsonb, p_message => $7) r`,
      [
        manifest.runId,
        manifest.target,
        manifest.attempt,
        manifest.createdAt,
        manifest.timings.totalMs,
        JSON.stringify(candidate.artifact),
        `imported from ${store.url}/${candidate.prefix}`,
      ],
    );
    if (rows.length > 0) {
      outcome.imported.push({ runId: manifest.runId, target: manifest.target, prefix: candidate.prefix });
      continue;
    }
    const { rows: existing } = await db.query<{ status: string; prefix: string | null }>(
      `select status, artifact->>'prefix' as prefix from backstop.runs where id = $1`,
      [manifest.runId],
    );
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
