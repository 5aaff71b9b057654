import type pg from 'pg';
import { databaseName, withDatabase } from '../core/databaseUrl.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';

/**
 * The advisory lock every Backstop restore holds on the destination server while it creates
 * or alters roles (a Supabase backup's roles file, a server backup's globals). Arbitrary and
 * fixed, distinct from the catalog's migration lock.
 */
export const ROLE_CHANGE_LOCK_KEY = 0x726f6c65; // "role"

interface LockOptions {
  signal?: AbortSignal;
  /** Told when another restore holds the lock, before waiting for it. */
  onEvent?: (kind: string, message: string) => void;
}

/**
 * Runs `run` (a step that creates or alters roles, to its commit) holding ROLE_CHANGE_LOCK_KEY
 * on the server of `url`, after any other Backstop restore holding it there.
 *
 * Roles belong to the server, not to a database: two restores into the same server (into two
 * of its databases, say two Supabase projects of one self-hosted server) alter the same rows
 * of pg_authid. PostgreSQL updates a catalog row without waiting its turn: the second ALTER
 * ROLE of a role another transaction changed meanwhile fails with "tuple concurrently
 * updated" (SQLSTATE XX000), and a Supabase restore, whose roles run in the one transaction
 * with its schema and data, keeps those rows changed until it commits. Retrying would rerun
 * the whole restore and could lose again; waiting for the other restore to finish with the
 * roles cannot fail. So the lock is held from before the first role statement until that
 * transaction has committed or rolled back (the process that ran it exited).
 *
 * Advisory locks are per database, so the lock is taken in the server's `postgres` database,
 * which every server (and every Supabase project) has, whatever database each restore goes
 * into; a server where that database cannot be reached gets it in the restore's own database
 * (restores into that database still wait for each other). The lock is a session's: it is
 * released when `run` settles (the connection ends), or when the connection is lost.
 */
export async function withRoleChangeLock<T>(url: string, options: LockOptions, run: () => Promise<T>): Promise<T> {
  const lock = await holdRoleChangeLock(url, options);
  try {
    return await run();
  } finally {
    await lock.release();
  }
}

async function holdRoleChangeLock(url: string, options: LockOptions): Promise<{ release(): Promise<void> }> {
  options.signal?.throwIfAborted();
  const client = await connectForLock(url);
  // A restore cancelled while it waits stops waiting: ending the connection rejects the query.
  const stop = () => void client.end().catch(() => {});
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [ROLE_CHANGE_LOCK_KEY]);
    if (!rows[0]?.locked) {
      options.onEvent?.('restore_waiting', "another restore is changing this server's roles (they are shared by all its databases): waiting for it to finish");
      await client.query('select pg_advisory_lock($1)', [ROLE_CHANGE_LOCK_KEY]);
    }
  } catch (error) {
    options.signal?.removeEventListener('abort', stop);
    await client.end().catch(() => {});
    options.signal?.throwIfAborted();
    throw error;
  }
  return {
    async release() {
      options.signal?.removeEventListener('abort', stop);
      await client.end().catch(() => {});
    },
  };
}

async function connectForLock(url: string): Promise<pg.Client> {
  if (databaseName(url) === 'postgres') return connectDatabase(url);
  return connectDatabase(withDatabase(url, 'postgres')).catch(() => connectDatabase(url));
}
