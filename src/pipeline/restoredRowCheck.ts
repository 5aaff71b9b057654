import type pg from 'pg';
import { connectDatabase } from '../pgtools/connectDatabase.ts';
import type { TableDataEntry } from './customArchiveScanner.ts';
import { countListedTables, countTable, type ListedTableCount } from './sourceSnapshot.ts';

type Table = { schema: string; name: string };

const key = (table: Table) => `${table.schema}.${table.name}`;

/**
 * pg_restore --verbose in parallel mode says `finished item 3475 TABLE DATA attachments` once
 * a table's COPY has committed (the tag is the bare table name; the dump id says which one).
 */
const FINISHED_TABLE_DATA = /^\s*(?:pg_restore:\s*)*finished item (\d+) TABLE DATA /;

/**
 * pg_restore --verbose progress lines: consumed, so that its error messages stay readable.
 * Parallel jobs write the "pg_restore: " prefix and the message in separate writes to one
 * shared stderr, so lines arrive interleaved ("pg_restore:pg_restore:  finished item …", then
 * a message with no prefix): the prefix is optional and may repeat.
 */
const PROGRESS_LINE =
  /^\s*(?:pg_restore:\s*)*(processing|finished|launching|creating|executing|connecting|entering|implied|dropping|setting owner|restoring|disabling|enabling|skipping|reducing|table of contents)\b/;

/**
 * Counts the rows of restored tables while pg_restore --jobs still works on the others: each
 * table is counted, on a connection of its own, as soon as pg_restore reports its data
 * committed, so the check overlaps the other tables' loads and the index builds instead of
 * following them (and the first full read of a fresh table, which sets its hint bits, happens
 * while the machine still has work in flight). `finish` counts whatever was not reported.
 */
export class RestoredRowCheck {
  readonly #url: string;
  readonly #signal: AbortSignal;
  readonly #wanted: Map<number, Table>;
  readonly #counts = new Map<string, ListedTableCount>();
  readonly #queue: Table[] = [];
  #draining: Promise<void> | null = null;
  #failure: unknown = null;
  #client: pg.Client | null = null;

  /**
   * `entries`: the archive's TABLE DATA entries by dump id; `tables`: the tables to count
   * (the selected part of the manifest).
   */
  constructor(url: string, tables: readonly Table[], entries: readonly TableDataEntry[], signal: AbortSignal) {
    this.#url = url;
    this.#signal = signal;
    const wanted = new Set(tables.map(key));
    this.#wanted = new Map(entries.filter((entry) => wanted.has(key(entry))).map((entry) => [entry.dumpId, { schema: entry.schema, name: entry.name }]));
  }

  /** For spawnPgTool's onStderrLine: queues finished tables, consumes progress lines. */
  readonly onStderrLine = (line: string): boolean => {
    const finished = FINISHED_TABLE_DATA.exec(line);
    if (finished) {
      const table = this.#wanted.get(Number(finished[1]));
      if (table) {
        this.#wanted.delete(Number(finished[1]));
        this.#queue.push(table);
        this.#draining ??= this.#drain();
      }
    }
    return PROGRESS_LINE.test(line);
  };

  async #drain(): Promise<void> {
    try {
      if (!this.#client) {
        this.#client = await connectDatabase(this.#url);
        // pg_restore's jobs are still loading: a count that starts parallel workers (two by
        // default) takes every core from them. One backend counts, at its own pace.
        await this.#client.query('set max_parallel_workers_per_gather = 0');
      }
      for (let table = this.#queue.shift(); table; table = this.#queue.shift()) {
        this.#signal.throwIfAborted();
        this.#counts.set(key(table), await countTable(this.#client, table));
      }
    } catch (error) {
      // Reported by finish().
      this.#failure ??= error;
      this.#queue.length = 0;
    } finally {
      this.#draining = null;
    }
  }

  /** After pg_restore succeeded: every table's count, the rest counted over `connections`. */
  async finish(tables: readonly Table[], connections: number): Promise<Map<string, ListedTableCount>> {
    while (this.#draining) await this.#draining;
    if (this.#failure) throw this.#failure;
    const rest = tables.filter((table) => !this.#counts.has(key(table)));
    const counted = rest.length > 0 ? await countListedTables(this.#url, rest, { connections, signal: this.#signal }) : new Map();
    for (const [name, count] of counted) this.#counts.set(name, count);
    return this.#counts;
  }

  async close(): Promise<void> {
    while (this.#draining) await this.#draining;
    await this.#client?.end().catch(() => {});
    this.#client = null;
  }
}
