import { createReadStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { BackstopError, isBackstopError } from '../core/errors.ts';
import { lsnToBigInt, segmentLineSchema, type RelationLine, type SegmentLine, type StoredSegment } from '../core/changeSegment.ts';
import { isoToMicros } from '../core/restorePoint.ts';
import type { AgeIdentity } from '../pipeline/age.ts';
import { spoolVerifiedFile } from '../pipeline/spoolVerifiedFile.ts';
import type { Store } from '../storage/store.ts';
import { segmentDataKey } from './segmentFiles.ts';

type SequenceSample = Extract<SegmentLine, { type: 'sequences' }>['sequences'][number];

/** A segment checked and spooled to local disk, with what planning needs of its lines. */
export interface LoadedSegment {
  segment: StoredSegment;
  dataKey: string;
  spoolPath: string;
  /** Each transaction's commit LSN and commit time (microseconds), in line order. */
  transactions: Array<{ lsn: bigint; micros: bigint }>;
  sequences: SequenceSample[];
}

export const relationKey = (schema: string, table: string): string => `${schema}.${table}`;

function corrupt(dataKey: string, line: number | null, problem: string): BackstopError {
  const where = line === null ? dataKey : `${dataKey} line ${line}`;
  return new BackstopError('ARTIFACT_CORRUPT', `Change segment ${where}: ${problem}. The segment is damaged or was altered; restore to a point before it.`);
}

/**
 * Reads a segment's data file into `spoolDir`: its stored bytes must have the manifest's size
 * and SHA-256 before anything else is believed (spoolVerifiedFile), then it is decrypted and
 * decompressed, and every line is parsed against the segment schema and checked against the
 * manifest (commit LSNs rising within its range, a relation line before any change to its
 * table, columns the relation has, the number of transactions, one sequences line at the end).
 * Nothing of a segment reaches a database unless all of it passed.
 */
export async function loadSegment(input: { store: Store; segment: StoredSegment; spoolDir: string; identities?: AgeIdentity[]; signal: AbortSignal }): Promise<LoadedSegment> {
  const { manifest } = input.segment;
  const dataKey = segmentDataKey(input.segment);
  if (manifest.file.encrypted && (input.identities ?? []).length === 0) {
    throw new BackstopError('INVALID_INPUT', `Change segment ${dataKey} is encrypted with age. Pass the identity file of the target's recipients with --identity FILE.`);
  }
  const spoolPath = path.join(input.spoolDir, `${path.basename(input.segment.manifestKey, '.json')}.jsonl`);
  try {
    await spoolVerifiedFile({
      store: input.store,
      prefix: dataKey.slice(0, dataKey.lastIndexOf('/') + 1),
      file: manifest.file,
      manifest: {
        compression: { algorithm: manifest.file.compression, level: null },
        // Recipients are not recorded per segment: the identities are tried as given.
        encryption: manifest.file.encrypted ? { algorithm: 'age', recipients: [] } : null,
      },
      spoolPath,
      signal: input.signal,
      identities: input.identities,
    });
  } catch (error) {
    if (isBackstopError(error, 'ARTIFACT_CORRUPT')) throw new BackstopError('ARTIFACT_CORRUPT', `Change segment ${dataKey} is damaged: ${error.message}`, { cause: error });
    throw error;
  }

  const startLsn = lsnToBigInt(manifest.startLsn);
  const endLsn = lsnToBigInt(manifest.endLsn);
  const relations = new Map<string, RelationLine>();
  const transactions: LoadedSegment['transactions'] = [];
  let sequences: SequenceSample[] | null = null;
  let number = 0;
  for await (const line of readLines(spoolPath, input.signal)) {
    number++;
    if (line === '') continue;
    let parsed: SegmentLine;
    try {
      const result = segmentLineSchema.safeParse(JSON.parse(line));
      if (!result.success) throw new Error(result.error.issues.map((issue) => `${issue.path.join('.') || '(line)'}: ${issue.message}`).join('; '));
      parsed = result.data;
    } catch (error) {
      throw corrupt(dataKey, number, `not a segment line (${(error as Error).message})`);
    }
    if (sequences !== null) throw corrupt(dataKey, number, 'a line after the sequences line, which must be the last');
    if (parsed.type === 'relation') {
      relations.set(relationKey(parsed.schema, parsed.table), parsed);
      continue;
    }
    if (parsed.type === 'sequences') {
      sequences = parsed.sequences;
      continue;
    }
    const lsn = lsnToBigInt(parsed.lsn);
    // A commit record may start exactly where the one before ended: at the segment's start.
    if (lsn < startLsn || lsn > endLsn) {
      throw corrupt(dataKey, number, `transaction ${parsed.xid} commits at ${parsed.lsn}, outside the segment's range ${manifest.startLsn} to ${manifest.endLsn}`);
    }
    const previous = transactions.at(-1);
    if (previous && lsn <= previous.lsn) throw corrupt(dataKey, number, `transaction ${parsed.xid} at ${parsed.lsn} is not after the one before it`);
    for (const change of parsed.changes) {
      const problem = changeProblem(change, relations);
      if (problem) throw corrupt(dataKey, number, `transaction ${parsed.xid}: ${problem}`);
    }
    transactions.push({ lsn, micros: isoToMicros(parsed.committedAt)! });
  }
  if (sequences === null) throw corrupt(dataKey, null, 'no sequences line: the file ends early');
  if (transactions.length !== manifest.transactions) throw corrupt(dataKey, null, `${transactions.length} transactions, the manifest says ${manifest.transactions}`);
  return { segment: input.segment, dataKey, spoolPath, transactions, sequences };
}

/** What is wrong with a change, given the relation lines read so far; null when nothing is. */
function changeProblem(change: Extract<SegmentLine, { type: 'transaction' }>['changes'][number], relations: Map<string, RelationLine>): string | null {
  if (change.kind === 'truncate') {
    const unknown = change.tables.find((table) => !relations.has(relationKey(table.schema, table.table)));
    return unknown ? `a truncate of ${relationKey(unknown.schema, unknown.table)}, which no relation line before it describes` : null;
  }
  const relation = relations.get(relationKey(change.schema, change.table));
  if (!relation) return `a change to ${relationKey(change.schema, change.table)}, which no relation line before it describes`;
  const columns = new Set(relation.columns.map((column) => column.name));
  const rows = [change.kind === 'delete' ? null : change.new, change.kind === 'insert' ? null : change.old];
  const named = rows.flatMap((row) => (row ? Object.keys(row) : [])).concat(change.kind === 'update' ? change.unchanged : []);
  const stranger = named.find((name) => !columns.has(name));
  return stranger === undefined ? null : `column "${stranger}" is not a column of ${relationKey(change.schema, change.table)}`;
}

async function* readLines(file: string, signal: AbortSignal): AsyncGenerator<string> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8', signal }), crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) yield line;
  } finally {
    lines.close();
  }
}

/**
 * The lines of a loaded segment, again, in order, for replay. Every line was checked against
 * the schema when the segment was loaded, and the spool is Backstop's own file in a private
 * directory: checking again would double the time a large transaction takes to read.
 */
export async function* segmentLines(loaded: LoadedSegment, signal: AbortSignal): AsyncGenerator<SegmentLine> {
  for await (const line of readLines(loaded.spoolPath, signal)) {
    if (line !== '') yield JSON.parse(line) as SegmentLine;
  }
}
