import { createHash } from 'node:crypto';
import { BackstopError } from '../core/errors.ts';
import { MANIFEST_NAME, manifestSchema, type Manifest } from '../core/manifest.ts';
import type { Store } from '../storage/store.ts';

const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export async function readManifest(store: Store, prefix: string): Promise<{ manifest: Manifest; sha256: string; size: number }> {
  const stream = await store.get(prefix + MANIFEST_NAME);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > MAX_MANIFEST_BYTES) throw new BackstopError('ARTIFACT_CORRUPT', `${prefix}${MANIFEST_NAME} is larger than 16 MiB; it is not a Backstop manifest.`);
    chunks.push(chunk as Buffer);
  }
  const bytes = Buffer.concat(chunks);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new BackstopError('ARTIFACT_CORRUPT', `${prefix}${MANIFEST_NAME} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const result = manifestSchema.safeParse(parsed);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
    throw new BackstopError('ARTIFACT_CORRUPT', `${prefix}${MANIFEST_NAME} is not a valid v1 manifest: ${problems}`);
  }
  return { manifest: result.data, sha256: createHash('sha256').update(bytes).digest('hex'), size };
}
