import { Transform, type TransformCallback } from 'node:stream';
import { BackstopError } from '../core/errors.ts';

const NEWLINE = 0x0a;
const BEGIN_LINE = 'BEGIN;\n';
const COMMIT_LINE = 'COMMIT;\n';
const COPY_END_LINE = '\\.\n';
const COPY_END = Buffer.from(COPY_END_LINE);
const NEWLINE_COPY_END = Buffer.from(`\n${COPY_END_LINE}`);
const COPY_START = /^COPY .* FROM stdin;\n$/;
/** What pg_restore writes before its BEGIN: comments, `\restrict`, and the SET/set_config preamble. */
const PREAMBLE = /^(?:\n|--|\\restrict |SET |SELECT pg_catalog\.set_config\()/;
/** What pg_restore writes after its COMMIT: blank lines, comments, `\unrestrict`. */
const TRAILER = /^(?:\n|--|\\unrestrict )/;

/**
 * The SQL text of `pg_restore --single-transaction --file=-` without its own `BEGIN;` and
 * `COMMIT;`, so that several such texts run in one transaction that the caller opens and
 * commits. pg_restore needs --single-transaction here: without it, its text holds a `BEGIN;`
 * … `COMMIT;` of its own around the large objects, which would commit the caller's transaction
 * midway. Its BEGIN is the first line after the fixed preamble; its COMMIT the last statement,
 * followed only by comments and `\unrestrict`: a `COMMIT;` line elsewhere (a procedure's body,
 * a row of COPY data) passes unchanged. A text not of that shape fails the stream, and so the
 * restore, rather than running outside the caller's transaction.
 */
export class UnwrapTransaction extends Transform {
  readonly #what: string;
  #partial: Buffer = Buffer.alloc(0);
  #begun = false;
  #inCopy = false;
  /** A `COMMIT;` line and what followed it, until it proves to be pg_restore's last statement or not. */
  #held: Buffer[] = [];

  constructor(what: string) {
    super();
    this.#what = what;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const data = this.#partial.length > 0 ? Buffer.concat([this.#partial, chunk]) : chunk;
    const out: Buffer[] = [];
    let start = 0;
    try {
      while (start < data.length) {
        if (this.#inCopy) {
          // Rows pass in one piece, up to the line that ends the COPY or the last whole line.
          const rowsEnd = copyRowsEnd(data, start);
          if (rowsEnd > start) out.push(data.subarray(start, rowsEnd));
          start = rowsEnd;
          if (!data.subarray(start, start + COPY_END.length).equals(COPY_END)) break;
        }
        const end = data.indexOf(NEWLINE, start);
        if (end === -1) break;
        this.#line(data.subarray(start, end + 1), out);
        start = end + 1;
      }
    } catch (error) {
      callback(error as Error);
      return;
    }
    this.#partial = Buffer.from(data.subarray(start));
    callback(null, out.length === 0 ? undefined : Buffer.concat(out));
  }

  override _flush(callback: TransformCallback): void {
    const out: Buffer[] = [];
    try {
      if (this.#partial.length > 0) this.#line(this.#partial, out);
      if (!this.#begun || this.#held.length === 0 || this.#inCopy) throw this.#unexpected('does not end with its COMMIT');
    } catch (error) {
      callback(error as Error);
      return;
    }
    out.push(...this.#held.slice(1));
    callback(null, out.length === 0 ? undefined : Buffer.concat(out));
  }

  #line(line: Buffer, out: Buffer[]): void {
    // COPY data is rows, whatever they read like; the common case, so checked first.
    if (this.#inCopy) {
      out.push(line);
      if (line.length === 3 && line.toString('latin1') === COPY_END_LINE) this.#inCopy = false;
      return;
    }
    const text = line.toString('utf8');
    if (this.#held.length > 0) {
      if (TRAILER.test(text)) {
        this.#held.push(line);
        return;
      }
      out.push(...this.#held);
      this.#held = [];
    }
    if (!this.#begun) {
      if (text === BEGIN_LINE) this.#begun = true;
      else if (PREAMBLE.test(text)) out.push(line);
      else throw this.#unexpected(`holds "${text.trim().slice(0, 80)}" before its BEGIN`);
      return;
    }
    if (text === COMMIT_LINE) {
      this.#held = [line];
      return;
    }
    if (COPY_START.test(text)) this.#inCopy = true;
    out.push(line);
  }

  #unexpected(what: string): BackstopError {
    return new BackstopError('RESTORE_FAILED', `pg_restore's SQL text of ${this.#what} ${what}, unlike what --single-transaction writes; nothing was committed.`);
  }
}

/**
 * Where the COPY rows from `start` stop: at the start of the `\.` line that ends them, or
 * else after the last whole line (the rest waits for more input).
 */
function copyRowsEnd(data: Buffer, start: number): number {
  if (data.subarray(start, start + COPY_END.length).equals(COPY_END)) return start;
  const marker = data.indexOf(NEWLINE_COPY_END, start);
  if (marker !== -1) return marker + 1;
  return Math.max(start, data.lastIndexOf(NEWLINE) + 1);
}
