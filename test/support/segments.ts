import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { SEGMENT_FORMAT, SEGMENT_VERSION, segmentBaseName, segmentPrefix, type SegmentLine, type SegmentManifest } from '../../src/core/changeSegment.ts';
import { createAgeEncryptStream } from '../../src/pipeline/age.ts';
import { createCompressor } from '../../src/pipeline/compression.ts';
import type { Store } from '../../src/storage/store.ts';

/**
 * Writes a change segment the way the contract (src/core/changeSegment.ts) describes it:
 * JSON lines, zstd, optionally age, then its manifest last. Tests of the restore build their
 * own segments with it; the format is Backstop's own, so these are legitimate inputs.
 */
export async function writeSegment(
  store: Store,
  input: {
    target: string;
    targetId: string;
    slot: string;
    generation?: number;
    startLsn: string;
    endLsn: string;
    /** Lines; a string is written as is (a damaged line). */
    lines: Array<SegmentLine | string>;
    encryptTo?: string[];
    /** Fields of the manifest to write otherwise (a manifest that lies). */
    manifest?: Partial<SegmentManifest>;
  },
): Promise<{ manifestKey: string; dataKey: string; manifest: SegmentManifest }> {
  const generation = input.generation ?? 1;
  const plain = Buffer.from(`${input.lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n')}\n`);
  const stages = [createCompressor({ algorithm: 'zstd', level: 1 })!, ...(input.encryptTo ? [createAgeEncryptStream(input.encryptTo)] : [])];
  let stream: NodeJS.ReadableStream = Readable.from([plain]);
  for (const stage of stages) stream = stream.pipe(stage);
  const stored = await buffer(stream);
  const base = segmentBaseName(input.startLsn, input.endLsn, generation);
  const name = `${base}.jsonl.zst${input.encryptTo ? '.age' : ''}`;
  const prefix = segmentPrefix(input.target, input.slot);
  await store.put(prefix + name, Readable.from([stored]));
  const transactions = input.lines.filter((line): line is Extract<SegmentLine, { type: 'transaction' }> => typeof line !== 'string' && line.type === 'transaction');
  const manifest: SegmentManifest = {
    format: SEGMENT_FORMAT,
    formatVersion: SEGMENT_VERSION,
    backstopVersion: '0.0.0-test',
    target: input.target,
    targetId: input.targetId,
    slot: input.slot,
    generation,
    startLsn: input.startLsn,
    endLsn: input.endLsn,
    firstCommitAt: transactions[0]?.committedAt ?? new Date().toISOString(),
    lastCommitAt: transactions.at(-1)?.committedAt ?? new Date().toISOString(),
    transactions: transactions.length,
    ...input.manifest,
    schemaChanges: [],
    file: {
      name,
      size: stored.length,
      sha256: createHash('sha256').update(stored).digest('hex'),
      uncompressedSize: plain.length,
      compression: 'zstd',
      encrypted: input.encryptTo !== undefined,
    },
  };
  const manifestKey = `${prefix}${base}.json`;
  await store.put(manifestKey, Readable.from([Buffer.from(JSON.stringify(manifest))]));
  return { manifestKey, dataKey: prefix + name, manifest };
}

export const testTargetId = (): string => randomUUID();
