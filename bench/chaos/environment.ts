import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createDatabaseIfMissing } from '../../src/db/createDatabaseIfMissing.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../../src/db/embeddedPostgres.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createPool, type Pool } from '../../src/db/pool.ts';
import { createTarget } from '../../src/db/targets.ts';
import { createApiToken } from '../../src/db/tokens.ts';
import { startS3rver, type S3rverHandle } from '../../test/support/s3rver.ts';
import { tableFingerprints, type Fingerprints } from './fingerprints.ts';
import { startWriteFailingProxy, type WriteFailingProxy } from './writeFailingProxy.ts';

const execFileAsync = promisify(execFile);

/**
 * Everything the chaos run breaks, all real and on this machine: a catalog PostgreSQL of its
 * own (so it can be restarted), a second PostgreSQL for the source databases (so a catalog
 * restart does not also take the sources down), a local-disk store, s3rver, and the same
 * s3rver behind a proxy that can start failing writes.
 */

export type StoreKind = 'local' | 's3' | 'flaky-s3';

export interface ChaosTarget {
  name: string;
  source: string;
  store: StoreKind;
  maxAttempts: number;
  encrypted: boolean;
  /** Executed by `backstop run RUN_ID` processes the chaos engine starts (a CI job's part), not by workers. */
  external: boolean;
}

/** The targets runs are spread over: every store, retries or not, encryption, workers and external runners. */
export const chaosTargets: readonly ChaosTarget[] = [
  { name: 'local-a', source: 'a', store: 'local', maxAttempts: 1, encrypted: false, external: false },
  { name: 'local-b', source: 'b', store: 'local', maxAttempts: 2, encrypted: false, external: false },
  { name: 's3-a', source: 'a', store: 's3', maxAttempts: 1, encrypted: false, external: false },
  { name: 's3-c', source: 'c', store: 's3', maxAttempts: 2, encrypted: true, external: false },
  { name: 'flaky-b', source: 'b', store: 'flaky-s3', maxAttempts: 1, encrypted: false, external: false },
  { name: 'ext-a', source: 'a', store: 'local', maxAttempts: 1, encrypted: false, external: true },
  { name: 'ext-c', source: 'c', store: 's3', maxAttempts: 2, encrypted: false, external: true },
];

export interface SourceDatabase {
  /** Short name (`a`, `b`, `c`). */
  key: string;
  database: string;
  /** A copy that is never connected to: the source is recreated from it after it was dropped. */
  template: string;
  url: string;
  fingerprints: Fingerprints;
}

export interface ChaosEnvironment {
  root: string;
  logDir: string;
  catalogHome: string;
  catalogUrl: string;
  catalogPort: number;
  /** The engine's own catalog connections (monitoring, queueing, checks). */
  pool: Pool;
  apiToken: string;
  sourcesUrl: string;
  sources: Map<string, SourceDatabase>;
  localStoreDir: string;
  s3: S3rverHandle;
  /** Key prefixes in the s3rver bucket: direct targets, and targets behind the proxy. */
  s3Prefixes: Record<'s3' | 'flaky-s3', string>;
  proxy: WriteFailingProxy;
  identityFile: string;
  targets: ChaosTarget[];
  /** Environment for every Backstop process. */
  childEnv: Record<string, string>;
  stopCatalog(mode: 'fast' | 'immediate'): Promise<void>;
  startCatalog(): Promise<void>;
  close(options: { keepFiles: boolean }): Promise<void>;
}

export interface EnvironmentOptions {
  rowsPerSource: number;
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
  reaperIntervalMs: number;
  runDeadlineMs: number;
  log: (message: string) => void;
}

export async function startEnvironment(options: EnvironmentOptions): Promise<ChaosEnvironment> {
  const root = await temporaryHome('backstop-chaos-');
  const cleanups: (() => Promise<unknown>)[] = [() => fs.rm(root, { recursive: true, force: true })];
  const undo = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    const logDir = path.join(root, 'logs');
    const localStoreDir = path.join(root, 'store');
    await fs.mkdir(logDir, { recursive: true });
    await fs.mkdir(localStoreDir, { recursive: true });

    options.log('starting the catalog PostgreSQL and the sources PostgreSQL');
    const catalogHome = path.join(root, 'catalog');
    const sourcesHome = path.join(root, 'sources');
    cleanups.push(() => stopEmbeddedPostgres(catalogHome, { mode: 'immediate' }));
    cleanups.push(() => stopEmbeddedPostgres(sourcesHome, { mode: 'immediate' }));
    const [catalogServer, sourcesServer] = await Promise.all([ensureEmbeddedPostgres(catalogHome), ensureEmbeddedPostgres(sourcesHome)]);
    await createDatabaseIfMissing(catalogServer.url(), 'backstop');
    const catalogUrl = catalogServer.url('backstop');
    const pool = createPool(catalogUrl, { max: 6, applicationName: 'backstop-chaos' });
    cleanups.push(() => pool.end());
    await migrate(pool);

    options.log(`creating source databases (${options.rowsPerSource} orders each)`);
    const sources = new Map<string, SourceDatabase>();
    for (const [index, key] of ['a', 'b', 'c'].entries()) {
      sources.set(key, await createSource(sourcesServer.url(), key, options.rowsPerSource * (index + 1)));
    }

    const s3 = await startS3rver('chaos', { startTimeoutMs: 60_000 });
    cleanups.push(() => s3.stop());
    const proxy = await startWriteFailingProxy(s3.endpoint);
    cleanups.push(() => proxy.close());
    const s3Prefixes = { s3: 'direct', 'flaky-s3': 'flaky' } as const;

    const identityFile = path.join(root, 'identity.txt');
    const { stderr } = await execFileAsync('age-keygen', ['-o', identityFile]);
    const recipient = /age1[0-9a-z]+/.exec(stderr)?.[0];
    if (!recipient) throw new Error(`age-keygen printed no recipient: ${stderr}`);

    const storeUrlOf = (kind: StoreKind): string => {
      if (kind === 'local') return `file://${localStoreDir}`;
      if (kind === 's3') return s3.storeUrl(s3Prefixes.s3);
      return `s3://${s3.bucket}/${s3Prefixes['flaky-s3']}?endpoint=${proxy.endpoint}&forcePathStyle=true`;
    };
    for (const target of chaosTargets) {
      await createTarget(pool, {
        name: target.name,
        databaseUrl: sources.get(target.source)!.url,
        storeUrl: storeUrlOf(target.store),
        maxAttempts: target.maxAttempts,
        options: target.encrypted ? { encryptTo: [recipient] } : {},
        // No GitHub token is configured anywhere: nothing dispatches these runs, and workers
        // leave them alone. The chaos engine plays the CI job and runs `backstop run RUN_ID`.
        executor: target.external ? { kind: 'github', owner: 'chaos', repo: 'chaos', workflow: 'backup.yml', ref: 'main' } : null,
      });
    }
    const apiToken = (await createApiToken(pool, { name: 'chaos', role: 'operator' })).token;

    const childEnv: Record<string, string> = {
      BACKSTOP_DATABASE_URL: catalogUrl,
      BACKSTOP_HOME: path.join(root, 'home'),
      BACKSTOP_LEASE_TTL: String(options.leaseTtlMs / 1000),
      BACKSTOP_HEARTBEAT_INTERVAL: String(options.heartbeatIntervalMs / 1000),
      BACKSTOP_REAPER_INTERVAL: String(options.reaperIntervalMs / 1000),
      BACKSTOP_RUN_DEADLINE: String(options.runDeadlineMs / 1000),
      BACKSTOP_LOG_LEVEL: 'info',
      ...s3.env,
    };

    return {
      root,
      logDir,
      catalogHome,
      catalogUrl,
      catalogPort: catalogServer.port,
      pool,
      apiToken,
      sourcesUrl: sourcesServer.url(),
      sources,
      localStoreDir,
      s3,
      s3Prefixes,
      proxy,
      identityFile,
      targets: [...chaosTargets],
      childEnv,
      async stopCatalog(mode) {
        if (!(await stopEmbeddedPostgres(catalogHome, { mode }))) throw new Error('the catalog PostgreSQL did not stop');
      },
      async startCatalog() {
        const started = await ensureEmbeddedPostgres(catalogHome);
        if (started.port !== catalogServer.port) {
          throw new Error(`the catalog came back on port ${started.port} instead of ${catalogServer.port}; every Backstop process has the old URL`);
        }
      },
      async close({ keepFiles }) {
        if (keepFiles) cleanups.shift();
        await undo();
      },
    };
  } catch (error) {
    await undo();
    throw error;
  }
}

/** A source database with a few tables, and its never-connected template copy. */
async function createSource(serverUrl: string, key: string, orders: number): Promise<SourceDatabase> {
  const database = `chaos_src_${key}`;
  const template = `${database}_template`;
  const templateUrl = withDatabase(serverUrl, template);
  await query(serverUrl, `create database ${template}`);
  await query(
    templateUrl,
    `create table customers (id bigint generated always as identity primary key, email text not null unique, profile jsonb not null default '{}');
     create table orders (id bigint primary key, customer_id bigint references customers (id), total numeric(12,2), note text, blob bytea, at timestamptz default '2024-01-01');
     create schema audit;
     create table audit.log (id bigserial primary key, message text);
     insert into customers (email, profile) select 'c' || i || '@example.com', jsonb_build_object('n', i) from generate_series(1, 500) i;
     insert into orders select i, 1 + i % 500, i * 1.5, repeat('note ', i % 40), decode(md5(i::text) || md5((i * 7)::text), 'hex') from generate_series(1, ${orders}) i;
     insert into audit.log (message) select 'event ' || i from generate_series(1, 200) i;`,
  );
  const fingerprints = await tableFingerprints(templateUrl);
  await query(serverUrl, `create database ${database} template ${template}`);
  return { key, database, template, url: withDatabase(serverUrl, database), fingerprints };
}

/** Recreates a dropped source from its template. */
export async function recreateSource(serverUrl: string, source: SourceDatabase): Promise<void> {
  await query(serverUrl, `create database ${source.database} template ${source.template}`);
}

export function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

export async function query<T extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, application_name: 'backstop-chaos' });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}
