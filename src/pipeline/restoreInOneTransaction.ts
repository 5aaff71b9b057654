import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackstopError } from '../core/errors.ts';
import { connectionArgs, spawnPgTool, type PgToolProcess } from '../pgtools/spawnPgTool.ts';
import { lastLines, PgRestoreErrors } from './pgRestoreErrors.ts';
import { UnwrapTransaction } from './unwrapTransaction.ts';
import { writeInto } from './writeInto.ts';

/** One part of the restore: pg_restore's arguments (an archive path, or `feed` to its stdin). */
export interface TransactionPart {
  what: string;
  args: string[];
  feed?: (tool: PgToolProcess) => Promise<void>;
}

/** psql's input broke or closed: psql stopped (its exit status then says why), or was stopped. */
class PsqlInputClosed extends Error {
  constructor(cause: unknown) {
    super('psql closed its input before the restore ended (nothing was committed).', { cause });
  }
}

/** Raised inside the transaction when the rows differ: psql's error then says so, in these words. */
const MISMATCH_PREFIX = 'The restored database differs from the backup: ';

/**
 * Restores several pg_restore parts (a parallel backup's pre-data, data files and post-data)
 * as ONE transaction: each part is turned into SQL by `pg_restore --file=-` and streamed, in
 * order, into one psql, between a BEGIN and a COMMIT of Backstop's own. The rows of `tables`
 * are counted in the same transaction, after the last part, and a difference from the manifest
 * is raised there, so it too commits nothing. The COMMIT is written only once every part's
 * pg_restore and feed ended well; on any failure psql is stopped, or has stopped on the error,
 * and the server rolls the transaction back. Nothing is spooled: each part's text flows through
 * as it is written.
 */
export async function restoreInOneTransaction(input: {
  pgRestore: string;
  psql: string;
  toUrl: string;
  parts: TransactionPart[];
  /** Tables whose row count must equal the manifest's before the commit (empty: no check). */
  tables: ReadonlyArray<{ schema: string; name: string; rows: number }>;
  running: Set<PgToolProcess>;
  signal: AbortSignal;
  onPart?: (what: string) => void;
}): Promise<void> {
  input.signal.throwIfAborted();
  const connection = connectionArgs(input.toUrl);
  const psql = spawnPgTool(input.psql, ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--no-password', `--dbname=${connection.dbname}`, '--file=-'], connection, { stdin: true });
  input.running.add(psql);
  const stdin = psql.child.stdin!;
  // psql that stopped on an error closed its input: its exit status says why, not the EPIPE.
  stdin.on('error', () => {});
  psql.child.stdout.resume();
  const write = (text: string) => new Promise<void>((resolve, reject) => stdin.write(text, (error) => (error ? reject(new PsqlInputClosed(error)) : resolve())));
  let failure: unknown = null;
  try {
    try {
      await write('BEGIN;\n');
      for (const part of input.parts) {
        await runPart(input.pgRestore, part, stdin, input.running, input.signal);
        input.onPart?.(part.what);
      }
      if (input.tables.length > 0) await write(rowCheckSql(input.tables));
      input.signal.throwIfAborted();
      await write('COMMIT;\n');
      stdin.end();
    } catch (error) {
      // A part's own failure (a damaged file, pg_restore's error) is the finding: psql is
      // stopped below. Its input closing is psql's doing: it stopped, and says why.
      if (!(error instanceof PsqlInputClosed) || input.signal.aborted) throw error;
      failure = new BackstopError('RESTORE_FAILED', `psql's input broke before the restore ended (nothing was committed): ${(error.cause as Error | undefined)?.message ?? 'closed'}`);
      stdin.destroy();
    }
    const { code, signal: killedBy, stderr } = await psql.exited;
    input.signal.throwIfAborted();
    if (code !== 0) {
      const mismatch = stderr.split('\n').find((line) => line.includes(MISMATCH_PREFIX));
      if (mismatch) throw new BackstopError('RESTORE_FAILED', `${mismatch.slice(mismatch.indexOf(MISMATCH_PREFIX))} Nothing was committed.`);
      throw new BackstopError(
        'RESTORE_FAILED',
        `psql ${killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`} (nothing was committed): ${lastLines(stderr) || 'no output'}`,
      );
    }
    // psql ended well only because its input ended, without the COMMIT.
    if (failure) throw failure;
  } finally {
    // Without its COMMIT, psql's end is the transaction's rollback.
    await psql.terminate();
    input.running.delete(psql);
  }
}

/** One part: pg_restore's SQL text, without its own BEGIN and COMMIT, into psql's input. */
async function runPart(pgRestore: string, part: TransactionPart, into: Writable, running: Set<PgToolProcess>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  const errors = new PgRestoreErrors();
  const restore = spawnPgTool(
    pgRestore,
    [...part.args, '--single-transaction', '--file=-'],
    {},
    {
      stdin: part.feed !== undefined,
      bufferedStdout: true,
      onStderrLine: (line) => {
        errors.see(line);
        return false;
      },
    },
  );
  running.add(restore);
  try {
    const settle = (promise: Promise<void>) =>
      promise.then(
        () => null,
        (error: unknown) => ({ error }),
      );
    const [fed, piped, { code, signal: killedBy, stderr }] = await Promise.all([
      settle(part.feed ? part.feed(restore) : Promise.resolve()),
      settle(
        pipeline(
          restore.child.stdout,
          new UnwrapTransaction(part.what),
          (text: AsyncIterable<Buffer>) => writeInto(text, into, { end: false, closed: () => new PsqlInputClosed(new Error('psql closed its input')) }),
          { signal },
        ),
      ),
      restore.exited,
    ]);
    signal.throwIfAborted();
    // The feed's own finding (a damaged file) first; then pg_restore's status; then the text's.
    if (fed?.error instanceof BackstopError) throw fed.error;
    if (code !== 0 && killedBy !== 'SIGPIPE') {
      throw new BackstopError(
        'RESTORE_FAILED',
        `pg_restore of ${part.what} ${killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`} (nothing was committed): ${errors.describe() ?? (lastLines(stderr) || 'no output')}`,
      );
    }
    // The text not of pg_restore's shape (UnwrapTransaction); else psql's input broke.
    if (piped?.error instanceof BackstopError) throw piped.error;
    if (piped) throw piped.error instanceof PsqlInputClosed ? piped.error : new PsqlInputClosed(piped.error);
    if (fed) throw fed.error;
    if (code !== 0) throw new PsqlInputClosed(new Error(`pg_restore of ${part.what} was killed by ${killedBy}`));
  } finally {
    await restore.terminate();
    running.delete(restore);
  }
}

/** A DO block that counts every table (`ONLY`, as countTable does) and raises on any difference. */
function rowCheckSql(tables: ReadonlyArray<{ schema: string; name: string; rows: number }>): string {
  const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
  const expected = tables.map((table) => `(${literal(table.schema)}, ${literal(table.name)}, ${table.rows}::bigint)`).join(',\n    ');
  return `DO $backstop$
DECLARE
  wanted record;
  counted bigint;
  problems text[] := '{}';
BEGIN
  FOR wanted IN SELECT * FROM (VALUES
    ${expected}) AS t(schema_name, table_name, rows) LOOP
    IF to_regclass(format('%I.%I', wanted.schema_name, wanted.table_name)) IS NULL THEN
      problems := problems || format('%s.%s has no table rows, the backup %s', wanted.schema_name, wanted.table_name, wanted.rows);
      CONTINUE;
    END IF;
    EXECUTE format('SELECT count(*) FROM ONLY %I.%I', wanted.schema_name, wanted.table_name) INTO counted;
    IF counted <> wanted.rows THEN
      problems := problems || format('%s.%s has %s rows, the backup %s', wanted.schema_name, wanted.table_name, counted, wanted.rows);
    END IF;
  END LOOP;
  IF cardinality(problems) > 0 THEN
    RAISE EXCEPTION '${MISMATCH_PREFIX}%.', array_to_string(problems, '; ');
  END IF;
END
$backstop$;
`;
}
