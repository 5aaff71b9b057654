import { createReadStream } from 'node:fs';
import { BackstopError } from '../../core/errors.ts';

/**
 * psql runs any unquoted backslash command it meets, `\!` included (a shell command as the
 * user running psql). pg_dump and pg_dumpall (from 17.6, 16.10, 15.14, 14.19, 13.22) put
 * everything they write between `\restrict KEY` and `\unrestrict KEY`: in between, psql
 * refuses every meta-command. A plain SQL file is therefore restorable only when it is
 * exactly that shape:
 *
 * - before `\restrict` and after `\unrestrict`: nothing but blank lines, `--` comments
 *   without a backslash, and the statements Backstop itself adds around pg_dump's output.
 *   psql's lexer is in a clean state at the `\restrict` line (no open quote, dollar quote or
 *   comment could hide it), and nothing outside the block can be a meta-command;
 * - inside the block: no other `\unrestrict` at all (psql would leave restricted mode at one
 *   in the middle of a line or in another spelling, and the rest would run unrestricted).
 *   COPY data escapes a backslash as `\\`, so a row holding the text `\unrestrict` is refused
 *   too: that costs a false refusal in an improbable case, never a missed attack.
 *
 * The check streams: it keeps the start of the current line and a few bytes of overlap, so
 * files of any size and lines of any length take constant memory.
 */
export const OUTSIDE_STATEMENTS = new Set(['SET session_replication_role = replica;', 'RESET ALL;']);

/** Longest line kept whole: lines outside the block are short, inside only the end marker matters. */
const HEAD_MAX = 512;
const UNRESTRICT = '\\unrestrict';

type Where = 'before' | 'inside' | 'after';

export class PlainDumpCheck {
  private where: Where = 'before';
  private key = '';
  private head = '';
  private headOverflow = false;
  private tail = '';
  private unrestrictInLine = false;
  private lineStarted = false;
  private line = 1;
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(10, start);
      const end = newline === -1 ? chunk.length : newline;
      if (end > start) this.addToLine(chunk.subarray(start, end).toString('latin1'));
      if (newline === -1) return;
      this.lineStarted = true;
      this.endLine();
      start = newline + 1;
    }
  }

  /** Throws unless the whole file was seen and has the shape pg_dump writes. */
  finish(): void {
    if (this.lineStarted) this.endLine();
    if (this.where === 'before') {
      this.refuse(
        `it holds no \`\\restrict\` line, which every plain dump of pg_dump and pg_dumpall 17.6, 16.10, 15.14, 14.19, 13.22 or later starts with. Backstop restores only files that are exactly what pg_dump writes; take a new backup with a current pg_dump, or read the file and restore it by hand if you trust it`,
      );
    }
    if (this.where === 'inside') {
      this.refuse(`it ends without the \`\\unrestrict\` line that closes its \`\\restrict\` block; it is not what pg_dump writes. Do not restore it; restore another backup`);
    }
  }

  private addToLine(text: string): void {
    this.lineStarted = true;
    if (!this.headOverflow) {
      const room = HEAD_MAX - this.head.length;
      if (text.length > room) this.headOverflow = true;
      this.head += text.slice(0, room);
    }
    const window = this.tail + text;
    if (window.includes(UNRESTRICT)) this.unrestrictInLine = true;
    this.tail = window.slice(-(UNRESTRICT.length - 1));
  }

  private endLine(): void {
    const line = this.head;
    const overflow = this.headOverflow;
    const unrestrict = this.unrestrictInLine;
    const number = this.line;
    this.head = '';
    this.headOverflow = false;
    this.tail = '';
    this.unrestrictInLine = false;
    this.lineStarted = false;
    this.line += 1;

    if (this.where === 'inside') {
      if (!overflow && line === `${UNRESTRICT} ${this.key}`) {
        this.where = 'after';
      } else if (unrestrict) {
        this.refuse(
          `line ${number} holds a \`\\unrestrict\` that is not the end of its \`\\restrict\` block (psql would run what follows it unrestricted). Do not restore it; restore another backup`,
        );
      }
      return;
    }
    if (!overflow && isHarmlessOutside(line)) return;
    if (this.where === 'before' && !overflow) {
      const restrict = /^\\restrict ([A-Za-z0-9]+)$/.exec(line);
      if (restrict) {
        this.key = restrict[1]!;
        this.where = 'inside';
        return;
      }
    }
    const place = this.where === 'before' ? 'before its `\\restrict` line' : 'after its `\\unrestrict` line';
    const shown = JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
    const what = /^\s*\\/.test(line) || line.includes('\\') ? 'a psql meta-command' : 'content';
    this.refuse(
      `line ${number}, ${place}, holds ${what} that pg_dump never writes there (${shown}); psql would run it outside restricted mode. Do not restore it; restore another backup, and find out who could write to the store`,
    );
  }

  private refuse(reason: string): never {
    throw new BackstopError('ARTIFACT_UNSAFE', `${this.file} is refused before psql runs: ${reason}.`);
  }
}

function isHarmlessOutside(line: string): boolean {
  if (line.includes('\\')) return false;
  return line.trim() === '' || line.startsWith('--') || OUTSIDE_STATEMENTS.has(line);
}

/** Streams a spooled plain SQL file through PlainDumpCheck. */
export async function assertPlainDumpShape(spoolPath: string, fileName: string, signal?: AbortSignal): Promise<void> {
  const check = new PlainDumpCheck(fileName);
  for await (const chunk of createReadStream(spoolPath, { highWaterMark: 1 << 20, signal })) check.push(chunk as Buffer);
  check.finish();
}
