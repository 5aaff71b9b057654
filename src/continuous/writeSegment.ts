import { Readable } from 'node:stream';
import { BackstopError } from '../core/errors.ts';
import {
  SEGMENT_FORMAT,
  SEGMENT_VERSION,
  segmentBaseName,
  segmentManifestSchema,
  segmentPrefix,
  type SegmentLine,
  type SegmentManifest,
  type StoredSegment,
} from '../core/changeSegment.ts';
import { storeStream } from '../pipeline/backup.ts';
import { fileExtension, type CompressionSettings } from '../pipeline/compression.ts';
import type { Store } from '../storage/store.ts';
import { BACKSTOP_VERSION } from '../version.ts';
import type { PendingSegment } from './segmentBuilder.ts';
import type { SequenceSample } from './sampleSequences.ts';

export interface SegmentDestination {
  store: Store;
  targetName: string;
  targetId: string;
  slot: string;
  generation: number;
  compression: CompressionSettings;
  /** age recipients, already parsed; empty: not encrypted. */
  recipients: string[];
}

/**
 * Stores one segment the way backups store their files (compression → age encryption →
 * SHA-256 → store, see storeStream), then its manifest, last: the segment is part of the
 * archive from that moment. The data object of a segment whose manifest never got written
 * is debris that no reader looks at.
 */
export async function writeSegment(destination: SegmentDestination, segment: PendingSegment, sequences: SequenceSample[], signal: AbortSignal): Promise<StoredSegment> {
  const base = segmentPrefix(destination.targetName, destination.slot) + segmentBaseName(segment.startLsn, segment.endLsn, destination.generation);
  const encrypted = destination.recipients.length > 0;
  const dataKey = `${base}.jsonl${fileExtension(destination.compression.algorithm)}${encrypted ? '.age' : ''}`;
  const lines: SegmentLine[] = [...segment.lines, { type: 'sequences', sequences }];
  const stored = await storeStream({
    store: destination.store,
    key: dataKey,
    content: jsonLines(lines),
    compression: destination.compression,
    recipients: destination.recipients,
    signal,
  });
  const manifest: SegmentManifest = segmentManifestSchema.parse({
    format: SEGMENT_FORMAT,
    formatVersion: SEGMENT_VERSION,
    backstopVersion: BACKSTOP_VERSION,
    target: destination.targetName,
    targetId: destination.targetId,
    slot: destination.slot,
    generation: destination.generation,
    startLsn: segment.startLsn,
    endLsn: segment.endLsn,
    firstCommitAt: segment.firstCommitAt,
    lastCommitAt: segment.lastCommitAt,
    transactions: segment.transactions,
    schemaChanges: segment.schemaChanges,
    file: {
      name: dataKey.slice(dataKey.lastIndexOf('/') + 1),
      size: stored.size,
      sha256: stored.sha256,
      uncompressedSize: stored.uncompressedSize,
      compression: destination.compression.algorithm,
      encrypted,
    },
  } satisfies SegmentManifest);
  const manifestKey = `${base}.json`;
  const stat = await destination.store.stat(dataKey);
  if (!stat || stat.size !== stored.size) {
    throw new BackstopError(
      'STORE_WRITE_FAILED',
      `${dataKey} in ${destination.store.url} is ${stat ? `${stat.size} bytes` : 'missing'} after it was stored, expected ${stored.size} bytes.`,
    );
  }
  await destination.store.put(manifestKey, Readable.from([Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)]), { signal });
  return { manifest, manifestKey };
}

async function* jsonLines(lines: SegmentLine[]): AsyncGenerator<Buffer> {
  let chunk: string[] = [];
  let size = 0;
  for (const line of lines) {
    const text = `${JSON.stringify(line)}\n`;
    chunk.push(text);
    size += text.length;
    if (size >= 1 << 20) {
      yield Buffer.from(chunk.join(''));
      chunk = [];
      size = 0;
    }
  }
  if (chunk.length > 0) yield Buffer.from(chunk.join(''));
}
