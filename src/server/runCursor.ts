import { BackstopError } from '../core/errors.ts';
import type { RunPosition } from '../db/runListing.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An opaque page cursor: the position of the last run of a page. */
export function encodeRunCursor(position: RunPosition): string {
  return Buffer.from(JSON.stringify([position.createdUs, position.id])).toString('base64url');
}

export function decodeRunCursor(cursor: string): RunPosition {
  const invalid = new BackstopError('INVALID_INPUT', 'cursor is not valid: pass the nextCursor of a previous page unchanged.');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid;
  }
  if (!Array.isArray(decoded) || decoded.length !== 2) throw invalid;
  const [createdUs, id] = decoded as unknown[];
  if (!Number.isSafeInteger(createdUs) || (createdUs as number) < 0 || typeof id !== 'string' || !UUID.test(id)) throw invalid;
  return { createdUs: createdUs as number, id };
}
