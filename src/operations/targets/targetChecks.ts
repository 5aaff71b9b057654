import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describeDatabase } from '../../core/databaseUrl.ts';
import { BackstopError, forField, type ErrorCode } from '../../core/errors.ts';
import type { BackupProfile } from '../../core/manifest.ts';
import { assertTargetEndpointsAllowed } from '../../net/outboundGuard.ts';
import { connectDatabase } from '../../pgtools/connectDatabase.ts';
import { findPgTool, type PgToolSearch } from '../../pgtools/findPgTools.ts';
import { serverMajorFromVersionNum } from '../../pgtools/pickPgTool.ts';
import { openStore } from '../../storage/openStore.ts';
import { assertStoreUrl } from './targetInput.ts';

/**
 * The checks a target passes before it is stored (add, and update of its database or store
 * URL) and that `target test` runs on a stored one, in this order: the store URL is one
 * Backstop can use (and its endpoint one it may reach); the database answers and says its
 * server version; a pg_dump that fits that version is installed; the store takes a write (a
 * probe object written and deleted). Each failure names the field at fault.
 */

export const targetCheckNames = ['store-url', 'database', 'pg-dump', 'store-write'] as const;
export type TargetCheckName = (typeof targetCheckNames)[number];

export interface TargetCheck {
  name: TargetCheckName;
  ok: boolean;
  /** What was found, or why it failed or was not tried, in plain words. */
  detail: string;
  error?: { code: ErrorCode; message: string };
}

export interface TargetCheckReport {
  ok: boolean;
  checks: TargetCheck[];
  serverVersion?: string;
  pgDump?: { path: string; version: string };
}

/** What the checks look at: a target as it would be stored. */
export interface CheckSubject {
  name: string;
  /** '' for a target made by `import`, which has none yet. */
  databaseUrl: string;
  storeUrl: string;
  profile: BackupProfile | undefined;
  /** Backups run on GitHub Actions: the job installs its own pg_dump. */
  github: boolean;
}

export interface CheckDeps {
  pgTools: PgToolSearch;
}

/** Which checks to run: the store's, the database's, or both. */
export interface CheckSelection {
  database: boolean;
  store: boolean;
}

const fieldOf: Record<TargetCheckName, 'storeUrl' | 'databaseUrl'> = {
  'store-url': 'storeUrl',
  database: 'databaseUrl',
  'pg-dump': 'databaseUrl',
  'store-write': 'storeUrl',
};

// A store that does not answer must not hold a request (or a `target add`) for ever.
const STORE_PROBE_TIMEOUT_MS = 30_000;

function failure(name: TargetCheckName, code: ErrorCode, error: unknown): BackstopError {
  const problem = error instanceof BackstopError ? error : new BackstopError(code, error instanceof Error ? error.message : String(error), { cause: error });
  return forField(problem, fieldOf[name]);
}

async function checkStoreUrl(subject: CheckSubject): Promise<string> {
  try {
    assertStoreUrl(subject.storeUrl);
    await assertTargetEndpointsAllowed({ storeUrl: subject.storeUrl });
  } catch (error) {
    throw failure('store-url', 'INVALID_INPUT', error);
  }
  return `backups go to ${subject.storeUrl}`;
}

async function checkDatabase(subject: CheckSubject): Promise<{ detail: string; serverVersion: string; major: number }> {
  if (subject.databaseUrl === '') {
    throw failure('database', 'INVALID_INPUT', new BackstopError('INVALID_INPUT', 'The target has no database URL yet (it was made by an import): set one.'));
  }
  try {
    const client = await connectDatabase(subject.databaseUrl);
    try {
      const { rows } = await client.query<{ version: string; num: string }>(`select current_setting('server_version') as version, current_setting('server_version_num') as num`);
      const serverVersion = rows[0]!.version.split(' ')[0]!;
      return {
        detail: `PostgreSQL ${serverVersion}, ${describeDatabase(subject.databaseUrl)}`,
        serverVersion,
        major: serverMajorFromVersionNum(Number(rows[0]!.num)),
      };
    } finally {
      await client.end().catch(() => {});
    }
  } catch (error) {
    throw failure('database', 'DATABASE_UNREACHABLE', error);
  }
}

async function checkPgDump(subject: CheckSubject, major: number, deps: CheckDeps): Promise<{ detail: string; pgDump?: { path: string; version: string } }> {
  if (subject.github) return { detail: 'backups run on GitHub Actions, whose job installs the PostgreSQL client that fits the server' };
  try {
    const pgDump = await findPgTool('pg_dump', major, deps.pgTools, 'database server');
    // The Supabase profile dumps roles with pg_dumpall, which must fit the server too.
    // The server profile dumps its globals with it.
    if (subject.profile === 'supabase' || subject.profile === 'server') await findPgTool('pg_dumpall', major, deps.pgTools, 'database server');
    return { detail: `pg_dump ${pgDump.version} (${pgDump.path})`, pgDump: { path: pgDump.path, version: pgDump.version } };
  } catch (error) {
    throw failure('pg-dump', 'PG_VERSION_MISMATCH', error);
  }
}

async function checkStoreWrite(subject: CheckSubject): Promise<string> {
  // Under the target's own folder, where its backups go; garbage collection never touches a key
  // without the artifact layout, should the delete below be lost.
  const key = `${subject.name}/.backstop-write-check-${randomUUID()}`;
  let store;
  try {
    store = await openStore(subject.storeUrl);
  } catch (error) {
    throw failure('store-write', 'STORE_WRITE_FAILED', error);
  }
  try {
    const signal = AbortSignal.timeout(STORE_PROBE_TIMEOUT_MS);
    try {
      await store.put(key, Readable.from([Buffer.from('Backstop checks that it can write here; this object is deleted at once.\n')]), { signal });
    } catch (error) {
      if (signal.aborted) {
        throw new BackstopError('STORE_WRITE_FAILED', `The store ${store.url} did not take a small object within ${STORE_PROBE_TIMEOUT_MS / 1000} s. Check that it is reachable.`, {
          cause: error,
        });
      }
      throw error;
    }
    try {
      await store.delete([key]);
    } catch (error) {
      throw new BackstopError(
        'STORE_WRITE_FAILED',
        `Backstop could write to ${store.url} but not delete what it wrote (${(error as Error).message}); retention and failed backups need to delete. Grant delete permission, and remove ${key}.`,
        { cause: error },
      );
    }
    return `wrote and deleted a probe object in ${store.url}`;
  } catch (error) {
    throw failure('store-write', 'STORE_WRITE_FAILED', error);
  } finally {
    await store.close().catch(() => {});
  }
}

const notTried = (name: TargetCheckName, detail: string): TargetCheck => ({ name, ok: false, detail });

/**
 * Runs the selected checks and reports each (`target test`): one failing does not stop the
 * others, except those that need what it would have found.
 */
export async function runTargetChecks(subject: CheckSubject, deps: CheckDeps, selection: CheckSelection = { database: true, store: true }): Promise<TargetCheckReport> {
  const report: TargetCheckReport = { ok: true, checks: [] };
  const record = async (name: TargetCheckName, work: () => Promise<string>): Promise<boolean> => {
    try {
      report.checks.push({ name, ok: true, detail: await work() });
      return true;
    } catch (error) {
      const problem = error instanceof BackstopError ? error : failure(name, 'INTERNAL', error);
      report.ok = false;
      report.checks.push({ name, ok: false, detail: problem.message, error: { code: problem.code, message: problem.message } });
      return false;
    }
  };
  let storeUsable = false;
  if (selection.store) storeUsable = await record('store-url', () => checkStoreUrl(subject));
  if (selection.database) {
    let major: number | null = null;
    await record('database', async () => {
      const found = await checkDatabase(subject);
      report.serverVersion = found.serverVersion;
      major = found.major;
      return found.detail;
    });
    if (major === null) report.checks.push(notTried('pg-dump', 'not tried: it needs the database server version'));
    else {
      const serverMajor: number = major;
      await record('pg-dump', async () => {
        const found = await checkPgDump(subject, serverMajor, deps);
        if (found.pgDump) report.pgDump = found.pgDump;
        return found.detail;
      });
    }
  }
  if (selection.store) {
    if (storeUsable) await record('store-write', () => checkStoreWrite(subject));
    else report.checks.push(notTried('store-write', 'not tried: the store URL is not usable'));
  }
  return report;
}

/** The checks before a target is stored: throws the first failure, its field named. */
export async function assertTargetChecks(subject: CheckSubject, deps: CheckDeps, selection: CheckSelection & { reachability: boolean }): Promise<void> {
  if (selection.store) await checkStoreUrl(subject);
  if (!selection.reachability) return;
  if (selection.database) {
    const { major } = await checkDatabase(subject);
    await checkPgDump(subject, major, deps);
  }
  if (selection.store) await checkStoreWrite(subject);
}
