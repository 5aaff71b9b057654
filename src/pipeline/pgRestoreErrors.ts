import { redactText } from '../core/databaseUrl.ts';

/** `pg_restore: error: …`; parallel jobs may repeat the prefix when their writes meet in one line. */
const ERROR_LINE = /^\s*(?:pg_restore:\s*)+error:\s?(.*)$/;
/** `pg_restore: from TOC entry 3360; 1259 16505 INDEX t4_w postgres`: which object failed. */
const TOC_ENTRY_LINE = /^\s*(?:pg_restore:\s*)+(from TOC entry .*)$/;
/** PostgreSQL 16 and later write an error's detail and hint as lines of their own. */
const DETAIL_LINE = /^\s*(?:pg_restore:\s*)+(detail|hint):\s?(.*)$/;
const TOOL_LINE = /^\s*pg_restore:/;

/** One error's report is cut here: its "Command was:" may be a whole function body. */
const BLOCK_MAX = 800;
/** The first error is the cause; the next ones ("a worker process died unexpectedly") follow from it. */
const BLOCKS_MAX = 3;
/** Without an error line, the end of the output, from the start of a line. */
const TAIL_MAX = 2000;

/**
 * What pg_restore said went wrong, read from its stderr line by line: each `pg_restore:
 * error:` line with the lines that belong to it (the server's DETAIL, HINT, CONTEXT, and
 * `Command was:`), and the TOC entry it names. The last 2,000 characters of the output
 * were no report: under --verbose (a parallel restore) they were progress and the end of a
 * long command, starting mid-word, and the error line itself was cut off.
 */
export class PgRestoreErrors {
  readonly #blocks: string[][] = [];
  #current: string[] | null = null;
  #currentLength = 0;
  #tocEntry: string | null = null;

  /** For spawnPgTool's onStderrLine, after the progress lines were taken out; consumes nothing. */
  see(line: string): void {
    const error = ERROR_LINE.exec(line);
    if (error) {
      this.#current = this.#blocks.length < BLOCKS_MAX ? [] : null;
      this.#currentLength = 0;
      if (this.#current) this.#blocks.push(this.#current);
      if (this.#tocEntry) this.#add(this.#tocEntry);
      this.#tocEntry = null;
      this.#add(`pg_restore: error: ${error[1]}`);
      return;
    }
    const tocEntry = TOC_ENTRY_LINE.exec(line);
    if (tocEntry) {
      this.#tocEntry = `pg_restore: ${tocEntry[1]}`;
      this.#current = null;
      return;
    }
    const detail = DETAIL_LINE.exec(line);
    if (detail) {
      this.#add(`pg_restore: ${detail[1]}: ${detail[2]}`);
      return;
    }
    // Any other line of the tool's own ends the report; a line without its prefix continues it.
    if (TOOL_LINE.test(line)) this.#current = null;
    else this.#add(line);
  }

  #add(line: string): void {
    if (!this.#current || this.#currentLength > BLOCK_MAX) return;
    this.#current.push(line);
    this.#currentLength += line.length + 1;
  }

  /** The error reports seen, each cut to a readable length; null when there was none. */
  describe(): string | null {
    if (this.#blocks.length === 0) return null;
    const reports = this.#blocks.map((block) => {
      const text = block.join('\n').trim();
      return text.length > BLOCK_MAX ? `${text.slice(0, BLOCK_MAX)}…` : text;
    });
    return redactText(reports.join('\n'));
  }
}

/** The end of a tool's output, starting at a line: for a failure that printed no error line. */
export function lastLines(text: string, maxChars = TAIL_MAX): string {
  if (text.length <= maxChars) return text;
  const tail = text.slice(-maxChars);
  const newline = tail.indexOf('\n');
  return newline === -1 ? `…${tail}` : tail.slice(newline + 1);
}
