import fs from 'node:fs/promises';

/**
 * Follows a pg_dump custom-format archive as it streams past, for two things:
 *
 * **Rows per table.** Every table's data is a block of COPY text, one line per row (COPY's text
 * format escapes newlines inside values), so counting the newlines of each block counts the
 * rows the archive holds, table by table, named by the table of contents. A backup records
 * these counts in its manifest: they are exactly what a restore must bring back, and counting
 * them costs the source server nothing (a `count(*)` of every table in the dump's snapshot
 * cost about a quarter of the dump's own time on the benchmark database).
 *
 * **Data offsets for an archive written to a pipe.** pg_dump writes the table of contents
 * before the data. Each entry has a slot for the offset of its data block, filled in only when
 * the output is seekable: pg_dump then rewrites the TOC at the end. Backstop always dumps to a
 * pipe, so its archives say "offset not set" for every table, and each `pg_restore --jobs`
 * worker finds a table's data by skipping over every block before it, one length header per
 * row (an uncompressed dump holds one chunk per row). On the bench database a 250 MB archive
 * restored with --jobs=2 in 26 s from a pipe-written file against 17.5 s from one written by
 * `pg_dump -f`. `writeDataOffsets` fills those slots in a spooled copy in place, exactly as
 * pg_dump does for a seekable output.
 *
 * Anything unexpected makes the scanner give up: the spool is then left as it was (pg_restore
 * reads it either way, only more slowly), and a backup counts rows on the server instead.
 * Only uncompressed archives (`-Z0`, what Backstop dumps) can be followed.
 *
 * Format: src/bin/pg_dump/pg_backup_archiver.c (WriteHead, WriteToc) and pg_backup_custom.c.
 */

const MAGIC = Buffer.from('PGDMP', 'latin1');
const K_VERS_1_10 = version(1, 10, 0);
const K_VERS_1_14 = version(1, 14, 0);
const K_VERS_1_15 = version(1, 15, 0);
const K_VERS_1_16 = version(1, 16, 0);
const ARCHIVE_CUSTOM = 1;
const BLK_DATA = 1;
const BLK_BLOBS = 3;
const K_OFFSET_POS_NOT_SET = 1;
const K_OFFSET_POS_SET = 2;
const COPY_TERMINATOR_NEWLINES = 3;
/** A TOC larger than this is not buffered: the archive is then left without offsets. */
const MAX_TOC_BYTES = 16 * 1024 * 1024;

function version(major: number, minor: number, rev: number): number {
  return (major * 256 + minor) * 256 + rev;
}

interface TocSlot {
  dumpId: number;
  /** File position of the entry's offset flag byte; the offset's bytes follow it. */
  position: number;
}

/** A TABLE DATA entry of the TOC: the table whose rows a data block holds. */
export interface TableDataEntry {
  dumpId: number;
  schema: string;
  name: string;
}

/** Any entry of the TOC: what it is (`TABLE`, `VIEW`, `SCHEMA`, …), its schema and name. */
export interface TocObject {
  desc: string;
  schema: string | null;
  name: string;
}

interface Toc {
  intSize: number;
  offSize: number;
  /** Entries whose data offset is "not set". */
  slots: TocSlot[];
  tables: TableDataEntry[];
  objects: TocObject[];
  /** Where the data blocks start. */
  end: number;
}

class Truncated extends Error {}
class Unsupported extends Error {}

/** Parses the header and TOC from the start of the archive; throws Truncated when more bytes are needed. */
function parseToc(buffer: Buffer): Toc {
  let at = 0;
  const need = (n: number) => {
    if (at + n > buffer.length) throw new Truncated();
  };
  const byte = () => {
    need(1);
    return buffer[at++]!;
  };
  need(MAGIC.length);
  if (!buffer.subarray(0, MAGIC.length).equals(MAGIC)) throw new Unsupported('not a custom-format archive');
  at = MAGIC.length;
  const archiveVersion = version(byte(), byte(), byte());
  const intSize = byte();
  const offSize = byte();
  const format = byte();
  if (archiveVersion < K_VERS_1_10 || archiveVersion > K_VERS_1_16 + 255) throw new Unsupported('archive version');
  if (format !== ARCHIVE_CUSTOM || intSize < 1 || intSize > 8 || offSize < 1 || offSize > 8) throw new Unsupported('archive layout');
  const int = (): number => {
    need(1 + intSize);
    const negative = buffer[at++] !== 0;
    let value = 0;
    for (let i = 0; i < intSize; i++) value += buffer[at++]! * 2 ** (8 * i);
    return negative ? -value : value;
  };
  const skipString = () => {
    const length = int();
    if (length > 0) {
      need(length);
      at += length;
    }
    return length;
  };
  const string = (): string | null => {
    const start = at + 1 + intSize;
    const length = skipString();
    return length < 0 ? null : buffer.toString('utf8', start, start + length);
  };
  if (archiveVersion >= K_VERS_1_15) byte();
  else int();
  for (let i = 0; i < 7; i++) int();
  for (let i = 0; i < 3; i++) skipString();

  const count = int();
  if (count < 0) throw new Unsupported('TOC entry count');
  const slots: TocSlot[] = [];
  const tables: TableDataEntry[] = [];
  const objects: TocObject[] = [];
  for (let entry = 0; entry < count; entry++) {
    const dumpId = int();
    int(); // had a data dumper
    skipString(); // table oid
    skipString(); // oid
    const tag = string();
    const desc = string();
    int(); // section
    for (let i = 0; i < 3; i++) skipString(); // defn, dropStmt, copyStmt
    const namespace = string();
    skipString(); // tablespace
    if (desc === 'TABLE DATA' && tag !== null && namespace !== null) tables.push({ dumpId, schema: namespace, name: tag });
    if (desc !== null && tag !== null) objects.push({ desc, schema: namespace, name: tag });
    if (archiveVersion >= K_VERS_1_14) skipString(); // tableam
    if (archiveVersion >= K_VERS_1_16) int(); // relkind
    skipString(); // owner
    skipString(); // "false": with oids
    while (skipString() >= 0); // dependencies, ended by a null string (length -1)
    need(1 + offSize);
    if (buffer[at] === K_OFFSET_POS_NOT_SET) slots.push({ dumpId, position: at });
    at += 1 + offSize;
  }
  return { intSize, offSize, slots, tables, objects, end: at };
}

type Expecting = 'dumpId' | 'chunkLength' | 'objectId';

/** Follows a custom-format archive as it streams past; see the top of this file. */
export class CustomArchiveScanner {
  #failed = false;
  /** Data block offsets came from adoptDataBlocks, not from scanning. */
  #adopted = false;
  #position = 0;
  #tocBuffer: Buffer[] = [];
  #tocBytes = 0;
  #nextParseAt = 0;
  #toc: Toc | null = null;
  /** Data block start by dump id. */
  readonly #blocks = new Map<number, number>();
  /** Newlines (rows) seen in each data block, by dump id. */
  readonly #rows = new Map<number, number>();
  #blockId = 0;
  // The block scanner's state: reading a block type, an integer, or skipping a chunk's bytes.
  #state: 'type' | 'int' | 'skip' = 'type';
  #expecting: Expecting = 'dumpId';
  #inLargeObjects = false;
  #blockStart = 0;
  #skip = 0;
  #int: number[] = [];

  write(chunk: Buffer): void {
    if (this.#failed) return;
    try {
      if (this.#toc === null) {
        // A copy: the caller may reuse its buffer (the spool is scanned through one).
        this.#tocBuffer.push(Buffer.from(chunk));
        this.#tocBytes += chunk.length;
        // Parse again only once the buffer has doubled: linear work whatever the chunk sizes.
        if (this.#tocBytes >= this.#nextParseAt) this.#parseBufferedToc();
        return;
      }
      this.#scan(chunk, 0, this.#toc.intSize);
      this.#position += chunk.length;
    } catch {
      this.#fail();
    }
  }

  /** Parses the buffered start of the archive, then scans whatever data came after the TOC. */
  #parseBufferedToc(): void {
    const buffered = Buffer.concat(this.#tocBuffer, this.#tocBytes);
    this.#tocBuffer = [buffered];
    let toc: Toc;
    try {
      toc = parseToc(buffered);
    } catch (error) {
      if (!(error instanceof Truncated) || this.#tocBytes > MAX_TOC_BYTES) throw error;
      this.#nextParseAt = this.#tocBytes * 2;
      return;
    }
    this.#toc = toc;
    this.#tocBuffer = [];
    this.#position = 0;
    this.#scan(buffered, toc.end, toc.intSize);
    this.#position = this.#tocBytes;
  }

  #fail(): void {
    this.#failed = true;
    this.#tocBuffer = [];
  }

  #scan(chunk: Buffer, start: number, intSize: number): void {
    let i = start;
    while (i < chunk.length) {
      if (this.#state === 'skip') {
        const n = Math.min(this.#skip, chunk.length - i);
        if (!this.#inLargeObjects) this.#addRows(countNewlines(chunk, i, i + n));
        i += n;
        this.#skip -= n;
        if (this.#skip === 0) this.#readInt('chunkLength');
      } else if (this.#state === 'type') {
        const type = chunk[i]!;
        if (type !== BLK_DATA && type !== BLK_BLOBS) throw new Unsupported(`block type ${type}`);
        this.#blockStart = this.#position + i;
        this.#inLargeObjects = type === BLK_BLOBS;
        i++;
        this.#readInt('dumpId');
      } else if (this.#expecting === 'chunkLength' && this.#int.length === 0 && i + 1 + intSize <= chunk.length) {
        // The hot path, once per row: step over every length-prefixed chunk that lies wholly
        // in this buffer, and hand the first one that does not to the general path.
        i = skipWholeChunks(chunk, i, intSize, !this.#inLargeObjects);
        this.#addRows(newlinesSkipped);
        this.#onInt(lastChunkLength);
      } else {
        let value: number;
        if (this.#int.length === 0 && i + 1 + intSize <= chunk.length) {
          value = decodeInt(chunk, i, intSize);
          i += 1 + intSize;
        } else {
          while (this.#int.length < 1 + intSize && i < chunk.length) this.#int.push(chunk[i++]!);
          if (this.#int.length < 1 + intSize) return;
          value = decodeInt(Buffer.from(this.#int), 0, intSize);
          this.#int = [];
        }
        this.#onInt(value);
      }
    }
  }

  #readInt(expecting: Expecting): void {
    this.#state = 'int';
    this.#expecting = expecting;
  }

  #onInt(value: number): void {
    switch (this.#expecting) {
      case 'dumpId':
        if (value <= 0 || this.#blocks.has(value)) throw new Unsupported('data block id');
        this.#blocks.set(value, this.#blockStart);
        this.#blockId = value;
        if (!this.#inLargeObjects) this.#rows.set(value, 0);
        this.#readInt(this.#inLargeObjects ? 'objectId' : 'chunkLength');
        return;
      case 'objectId':
        if (value === 0) this.#state = 'type';
        else this.#readInt('chunkLength');
        return;
      case 'chunkLength':
        if (value < 0) throw new Unsupported('chunk length');
        if (value > 0) {
          this.#state = 'skip';
          this.#skip = value;
        } else if (this.#inLargeObjects) {
          this.#readInt('objectId');
        } else {
          this.#endTableBlock();
          this.#state = 'type';
        }
    }
  }

  /**
   * pg_dump ends every table's COPY data with `\.\n\n\n` (dumpTableData_copy in pg_dump.c):
   * three newlines that are not rows.
   */
  #endTableBlock(): void {
    const newlines = this.#rows.get(this.#blockId)!;
    if (newlines < COPY_TERMINATOR_NEWLINES) throw new Unsupported('table data without its COPY terminator');
    this.#rows.set(this.#blockId, newlines - COPY_TERMINATOR_NEWLINES);
  }

  #addRows(rows: number): void {
    if (rows > 0 && !this.#inLargeObjects) this.#rows.set(this.#blockId, this.#rows.get(this.#blockId)! + rows);
  }

  /** The archive followed to a clean end (after the last write), or null. */
  #finished(): Toc | null {
    if (!this.#failed && this.#toc === null && this.#tocBytes > 0) {
      try {
        this.#parseBufferedToc();
      } catch {
        this.#fail();
      }
    }
    if (this.#adopted) return this.#toc;
    return this.#failed || this.#state !== 'type' ? null : this.#toc;
  }

  /** Whether the header and TOC have been read. */
  tocRead(): boolean {
    return this.#toc !== null;
  }

  /**
   * Takes the data block offsets from elsewhere (the manifest recorded them when the backup
   * scanned the archive), once the TOC has been read: the rest of the archive need not be
   * scanned. writeDataOffsets still checks each against the file before using any.
   */
  adoptDataBlocks(blocks: ReadonlyArray<readonly [number, number]>): boolean {
    if (this.#failed || this.#toc === null) return false;
    this.#blocks.clear();
    for (const [dumpId, offset] of blocks) this.#blocks.set(dumpId, offset);
    this.#adopted = true;
    return true;
  }

  /** Where each data block starts, as [dump id, offset], in file order (the order they were met); null as for tableRows. */
  dataBlocks(): Array<[number, number]> | null {
    if (this.#finished() === null) return null;
    return [...this.#blocks];
  }

  /** Every entry of the TOC, once it has been read; empty before (or when it could not be read). */
  tocObjects(): readonly TocObject[] {
    return this.#toc?.objects ?? [];
  }

  /** The TOC's TABLE DATA entries, once the TOC has been read; empty before. */
  tableEntries(): readonly TableDataEntry[] {
    return this.#toc?.tables ?? [];
  }

  /**
   * Rows of every table whose data the archive holds, sorted by schema and name; null when the
   * archive could not be followed to a clean end, or a table's data block is missing.
   */
  tableRows(): Array<{ schema: string; name: string; rows: number }> | null {
    const toc = this.#finished();
    if (toc === null) return null;
    const counted: Array<{ schema: string; name: string; rows: number }> = [];
    for (const table of toc.tables) {
      const rows = this.#rows.get(table.dumpId);
      if (rows === undefined) return null;
      counted.push({ schema: table.schema, name: table.name, rows });
    }
    return counted.sort((a, b) => (a.schema === b.schema ? compare(a.name, b.name) : compare(a.schema, b.schema)));
  }

  /** The offsets to fill in, or none when the archive could not be followed to a clean end. */
  offsets(): { offSize: number; intSize: number; slots: Array<TocSlot & { offset: number }> } | null {
    const toc = this.#finished();
    if (toc === null) return null;
    const slots = toc.slots.flatMap((slot) => {
      const offset = this.#blocks.get(slot.dumpId);
      return offset === undefined ? [] : [{ ...slot, offset }];
    });
    return { offSize: toc.offSize, intSize: toc.intSize, slots };
  }
}

/** What skipWholeChunks found besides its position (module variables: no allocation per call). */
let lastChunkLength = 0;
let newlinesSkipped = 0;

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Newlines in buffer[from, to). */
function countNewlines(buffer: Buffer, from: number, to: number): number {
  let count = 0;
  for (let at = buffer.indexOf(10, from); at !== -1 && at < to; at = buffer.indexOf(10, at + 1)) count++;
  return count;
}

/**
 * From a chunk length header at `i` in a table's data block, steps over every chunk that lies
 * wholly in `buffer`, counting the newlines of their rows; returns the position after the length
 * header of the first one that does not (or of the 0 that ends the block), and leaves that length
 * in lastChunkLength and the newlines in newlinesSkipped. (pg_dump -Z0 writes one chunk per row,
 * so the first newline of a chunk is usually its last byte: one indexOf per row.)
 */
function skipWholeChunks(buffer: Buffer, i: number, intSize: number, countRows: boolean): number {
  const end = buffer.length;
  let newlines = 0;
  for (;;) {
    const length = decodeInt(buffer, i, intSize);
    i += 1 + intSize;
    if (length > 0 && i + length + 1 + intSize <= end) {
      const chunkEnd = i + length;
      let at = countRows ? buffer.indexOf(10, i) : -1;
      while (at !== -1 && at < chunkEnd) {
        newlines++;
        at = at === chunkEnd - 1 ? -1 : buffer.indexOf(10, at + 1);
      }
      i = chunkEnd;
      continue;
    }
    lastChunkLength = length;
    newlinesSkipped = newlines;
    return i;
  }
}

function decodeInt(buffer: Buffer, at: number, intSize: number): number {
  // pg_dump's int is a sign byte and intSize little-endian bytes: 4 on every platform it builds on.
  if (intSize === 4) {
    const value = (buffer[at + 1]! | (buffer[at + 2]! << 8) | (buffer[at + 3]! << 16) | (buffer[at + 4]! << 24)) >>> 0;
    return buffer[at] !== 0 ? -value : value;
  }
  let value = 0;
  for (let i = 0; i < intSize; i++) value += buffer[at + 1 + i]! * 2 ** (8 * i);
  return buffer[at] !== 0 ? -value : value;
}

/**
 * Fills the scanned offsets into the archive at `file`. Each offset is checked against the
 * file first (a data block of that entry must start there); on any mismatch nothing is written.
 * Returns how many entries were filled in.
 */
export async function writeDataOffsets(file: string, scanner: CustomArchiveScanner): Promise<number> {
  const found = scanner.offsets();
  if (found === null || found.slots.length === 0) return 0;
  const handle = await fs.open(file, 'r+');
  try {
    const header = Buffer.alloc(2 + found.intSize);
    for (const slot of found.slots) {
      const { bytesRead } = await handle.read(header, 0, header.length, slot.offset);
      const type = header[0];
      if (bytesRead !== header.length || (type !== BLK_DATA && type !== BLK_BLOBS) || decodeInt(header, 1, found.intSize) !== slot.dumpId) return 0;
    }
    for (const slot of found.slots) {
      const field = Buffer.alloc(1 + found.offSize);
      field[0] = K_OFFSET_POS_SET;
      let rest = slot.offset;
      for (let i = 0; i < found.offSize; i++) {
        field[1 + i] = rest % 256;
        rest = Math.floor(rest / 256);
      }
      await handle.write(field, 0, field.length, slot.position);
    }
    return found.slots.length;
  } finally {
    await handle.close();
  }
}
