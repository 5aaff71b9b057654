import { BackstopError } from '../core/errors.ts';
import { segmentBaseName, segmentManifestSchema, segmentPrefix, lsnToBigInt, type StoredSegment } from '../core/changeSegment.ts';
import type { Store } from '../storage/store.ts';

/** A segment's manifest and the key it is stored under. */
const MAX_SEGMENT_MANIFEST_BYTES = 1024 * 1024;

/** The data file's key: beside its manifest, under the manifest's own (checked) file name. */
export function segmentDataKey(segment: StoredSegment): string {
  return segment.manifestKey.slice(0, segment.manifestKey.lastIndexOf('/') + 1) + segment.manifest.file.name;
}

/**
 * A segment manifest is input like any stored file: it must be the one its key names (slot,
 * LSN range and generation, for the target asked about), and its data file must sit beside it
 * under the same base name, so that a manifest cannot point a restore at another object.
 */
export function checkSegmentBinding(segment: StoredSegment, expected: { target: string; targetId?: string }): void {
  const { manifest, manifestKey } = segment;
  const base = segmentBaseName(manifest.startLsn, manifest.endLsn, manifest.generation);
  const expectedKey = `${segmentPrefix(expected.target, manifest.slot)}${base}.json`;
  const problems: string[] = [];
  if (manifestKey !== expectedKey) problems.push(`its key should be ${expectedKey} by what it says of itself`);
  if (manifest.target !== expected.target) problems.push(`it names target "${manifest.target}"`);
  if (expected.targetId !== undefined && manifest.targetId !== expected.targetId) problems.push(`it names target id ${manifest.targetId}`);
  if (lsnToBigInt(manifest.startLsn) >= lsnToBigInt(manifest.endLsn)) problems.push(`its range ${manifest.startLsn}..${manifest.endLsn} is empty`);
  if (!manifest.file.name.startsWith(`${base}.jsonl`) || manifest.file.name.includes('/')) problems.push(`its data file "${manifest.file.name}" is not ${base}.jsonl…`);
  if (problems.length > 0) {
    throw new BackstopError(
      'ARTIFACT_CORRUPT',
      `The change segment manifest ${manifestKey} is not one of target "${expected.target}": ${problems.join('; ')}. Treat the store as tampered with.`,
    );
  }
}

/** Parses a stored segment manifest, refusing anything that is not one. */
export function parseSegmentManifest(manifestKey: string, text: string): StoredSegment {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new BackstopError('ARTIFACT_CORRUPT', `The change segment manifest ${manifestKey} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const result = segmentManifestSchema.safeParse(parsed);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
    throw new BackstopError('ARTIFACT_CORRUPT', `The change segment manifest ${manifestKey} is not a valid segment manifest: ${problems}`);
  }
  return { manifestKey, manifest: result.data };
}

async function readSmallObject(store: Store, key: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of await store.get(key)) {
    size += (chunk as Buffer).length;
    if (size > MAX_SEGMENT_MANIFEST_BYTES) throw new BackstopError('ARTIFACT_CORRUPT', `${key} is larger than 1 MiB; it is not a segment manifest.`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The segments of a target read from its store alone, by the key layout: every `.json` under
 * `<target>/continuous/`, parsed and bound. A data file without its manifest is debris of a
 * crash and is not a segment. For a catalog that lost its rows (or never had them: an import).
 */
export async function listStoredSegments(store: Store, target: string, targetId?: string): Promise<StoredSegment[]> {
  const segments: StoredSegment[] = [];
  for await (const object of store.list(`${target}/continuous/`)) {
    if (!object.key.endsWith('.json')) continue;
    segments.push(await readSegmentManifest(store, object.key, { target, ...(targetId !== undefined ? { targetId } : {}) }));
  }
  return segments;
}

/** One stored segment manifest, read, parsed and bound to the target (ARTIFACT_CORRUPT when it is not one of its segments). */
export async function readSegmentManifest(store: Store, key: string, expected: { target: string; targetId?: string }): Promise<StoredSegment> {
  const segment = parseSegmentManifest(key, await readSmallObject(store, key));
  checkSegmentBinding(segment, expected);
  return segment;
}
