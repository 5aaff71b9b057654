import { BackstopError } from '../core/errors.ts';
import { MANIFEST_NAME } from '../core/manifest.ts';

/**
 * Where a backup lives, from the URL of its manifest (or of its folder): the folder becomes
 * the store root, so `restore` can work from the bucket alone, with no catalog.
 *
 *   s3://bucket/app/2026/11/<run>/attempt-1/manifest.json?endpoint=…  →  s3://bucket/app/2026/11/<run>/attempt-1?endpoint=…
 *   /backups/app/2026/11/<run>/attempt-1/manifest.json                →  /backups/app/2026/11/<run>/attempt-1
 */
export function locateManifest(url: string): { storeUrl: string; prefix: string } {
  const queryAt = url.indexOf('?');
  const path = queryAt === -1 ? url : url.slice(0, queryAt);
  const query = queryAt === -1 ? '' : url.slice(queryAt);
  const folder = path.endsWith(`/${MANIFEST_NAME}`) ? path.slice(0, -MANIFEST_NAME.length - 1) : path.replace(/\/+$/, '');
  if (!folder || folder === 's3:/') {
    throw new BackstopError('INVALID_INPUT', `"${url}" does not name a backup's manifest. Pass the URL of a manifest.json, e.g. s3://bucket/app/2026/11/RUN/attempt-1/manifest.json.`);
  }
  return { storeUrl: folder + query, prefix: '' };
}

export function looksLikeManifestUrl(text: string): boolean {
  return text.includes('/') || text.endsWith('.json');
}
