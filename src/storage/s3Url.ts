import { BackstopError } from '../core/errors.ts';

const MIB = 1024 * 1024;
/** S3 refuses multipart parts under 5 MiB (all but the last) and over 5 GiB. */
const MIN_PART_SIZE_MIB = 5;
const MAX_PART_SIZE_MIB = 5 * 1024;
/**
 * Parts of the smallest size S3 accepts keep a backup's memory low (about (queue + 2) parts in
 * flight); objects expected to be large get larger parts (see partSizeFor).
 */
export const DEFAULT_PART_SIZE_MIB = 5;
/** S3 allows 10,000 parts per upload; sizing for fewer leaves room for an estimate that was low. */
const PLANNED_MAX_PARTS = 8000;

/**
 * The part size for an upload: the URL's (or the default), raised so that an object of
 * `expectedBytes` fits in PLANNED_MAX_PARTS parts. Without a raise, 5 MiB parts would cap an
 * object at 50 GB.
 */
export function partSizeFor(partSizeBytes: number, expectedBytes: number | undefined): number {
  if (expectedBytes === undefined || !(expectedBytes > 0)) return partSizeBytes;
  const needed = Math.ceil(expectedBytes / PLANNED_MAX_PARTS / MIB) * MIB;
  return Math.min(Math.max(partSizeBytes, needed), MAX_PART_SIZE_MIB * MIB);
}
export const DEFAULT_REGION = 'us-east-1';

const KNOWN_OPTIONS = ['endpoint', 'region', 'forcePathStyle', 'path-style', 'partSize'] as const;

export interface S3Location {
  bucket: string;
  /** Key prefix every store key is appended to: '' or ends with '/'. */
  keyPrefix: string;
  /** Custom endpoint (R2, B2, MinIO…), origin and path only; undefined for AWS S3. */
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  partSizeBytes: number;
  /** The store URL rebuilt from the parsed parts: safe to print, holds no secrets. */
  printableUrl: string;
}

/**
 * Parses `s3://bucket/optional/prefix?endpoint=https://host:port&region=auto&forcePathStyle=true&partSize=8`.
 *
 * Credentials never come from the URL: store URLs end up in configs, logs and run rows, so a
 * URL carrying a key is refused instead of silently used. Every problem is reported at once.
 */
export function parseS3Url(storeUrl: string, env: NodeJS.ProcessEnv = process.env): S3Location {
  let url: URL;
  try {
    url = new URL(storeUrl);
  } catch {
    throw new BackstopError('INVALID_INPUT', `Store URL is not a valid URL. Use s3://bucket/prefix?endpoint=https://host.`);
  }
  if (url.protocol !== 's3:') {
    throw new BackstopError('INVALID_INPUT', `Store URL must start with s3:// (got ${url.protocol}//).`);
  }
  const problems: string[] = [];
  if (url.username !== '' || url.password !== '') {
    problems.push('credentials in the store URL are not accepted; remove them from the URL and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile) in the environment');
  }
  const bucket = url.hostname;
  if (bucket === '') problems.push('the URL names no bucket: write s3://BUCKET/prefix');
  if (url.port !== '') problems.push('a port belongs in the endpoint option, not after the bucket name');

  for (const name of new Set(url.searchParams.keys())) {
    if (!(KNOWN_OPTIONS as readonly string[]).includes(name)) {
      problems.push(`unknown option "${name}" (known: ${KNOWN_OPTIONS.join(', ')})`);
    }
  }

  let endpoint: string | undefined;
  let endpointHost = '';
  const endpointOption = url.searchParams.get('endpoint');
  if (endpointOption !== null) {
    try {
      const parsed = new URL(endpointOption);
      if (parsed.username !== '' || parsed.password !== '') {
        problems.push('credentials in the endpoint are not accepted; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment');
      } else if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
        problems.push(`endpoint must be an http:// or https:// URL`);
      } else {
        endpoint = `${parsed.origin}${parsed.pathname === '/' ? '' : parsed.pathname.replace(/\/+$/, '')}`;
        endpointHost = parsed.hostname;
      }
    } catch {
      problems.push('endpoint is not a URL (expected e.g. https://<account>.r2.cloudflarestorage.com)');
    }
  }

  const pathStyleOption = url.searchParams.get('forcePathStyle') ?? url.searchParams.get('path-style');
  let forcePathStyle = false;
  if (pathStyleOption !== null) {
    if (pathStyleOption === 'true' || pathStyleOption === '') forcePathStyle = true;
    else if (pathStyleOption !== 'false') problems.push(`forcePathStyle must be true or false (got "${pathStyleOption}")`);
  } else if (endpointHost === 'localhost' || /^[\d.]+$/.test(endpointHost) || endpointHost.startsWith('[')) {
    // A bucket can never be a sub-domain of an IP address or localhost, so virtual-hosted
    // addressing cannot work there; path style is the only choice.
    forcePathStyle = true;
  }

  const partSizeOption = url.searchParams.get('partSize');
  let partSizeMib = DEFAULT_PART_SIZE_MIB;
  if (partSizeOption !== null) {
    const parsed = Number(partSizeOption);
    if (!Number.isInteger(parsed) || parsed < MIN_PART_SIZE_MIB || parsed > MAX_PART_SIZE_MIB) {
      problems.push(`partSize is in MiB and must be a whole number from ${MIN_PART_SIZE_MIB} to ${MAX_PART_SIZE_MIB} (got "${partSizeOption}")`);
    } else {
      partSizeMib = parsed;
    }
  }

  const regionOption = url.searchParams.get('region');
  if (regionOption === '') problems.push('region is empty');

  let prefix = '';
  try {
    prefix = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, '');
  } catch {
    problems.push('the prefix holds an invalid %-escape');
  }

  if (problems.length > 0) {
    throw new BackstopError('INVALID_INPUT', `Invalid S3 store URL: ${problems.join('; ')}.`);
  }

  const printable = new URLSearchParams();
  if (endpoint !== undefined) printable.set('endpoint', endpoint);
  if (regionOption !== null) printable.set('region', regionOption);
  if (forcePathStyle) printable.set('forcePathStyle', 'true');
  if (partSizeOption !== null) printable.set('partSize', String(partSizeMib));
  const query = printable.toString().replaceAll('%3A', ':').replaceAll('%2F', '/');

  return {
    bucket,
    keyPrefix: prefix === '' ? '' : `${prefix}/`,
    endpoint,
    region: regionOption ?? (env.AWS_REGION || DEFAULT_REGION),
    forcePathStyle,
    partSizeBytes: partSizeMib * MIB,
    printableUrl: `s3://${bucket}/${prefix}${query === '' ? '' : `?${query}`}`,
  };
}
