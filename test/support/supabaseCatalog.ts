/**
 * Backstop's catalog inside a Supabase-like project, as supabase/migrations/…_backstop.sql
 * makes it, plus the sessions that reach it: PostgREST's (a NOINHERIT login role that sets
 * `role` and `request.jwt.claims` per transaction) and Backstop's own (a login role that is a
 * member of backstop_service).
 *
 * `backstop_service` is cluster-wide and shared by the test files that run at once: it is
 * created by the migration under a cluster-wide lock and dropped by whichever file finishes
 * last (a drop refused because another file's database still depends on it is expected).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { pgErrorCode } from '../../src/core/pgErrors.ts';
import { catalogTypes, createPool, type Pool } from '../../src/db/pool.ts';
import { SUPABASE_MIGRATION_PATH } from '../../src/supabaseCatalog/supabaseMigration.ts';
import { CALLER_SESSION_SQL, SERVICE_SESSION_SQL } from '../../src/supabaseCatalog/triggerBackup.ts';
import { repoRoot } from './cli.ts';
import { adminQuery, adminUrl, type TestDatabase } from './pg.ts';
import { createSupabaseProject } from './supabase.ts';

// Advisory locks are per database: every file takes this one in the admin database.
const ROLE_LOCK_KEY = 0x62737276; // "bsrv"
const DEPENDENT_OBJECTS_STILL_EXIST = '2BP01';

async function withRoleLock<T>(work: () => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl() });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [ROLE_LOCK_KEY]);
    return await work();
  } finally {
    await client.end();
  }
}

export async function supabaseMigrationSql(): Promise<string> {
  return fs.readFile(path.join(repoRoot, SUPABASE_MIGRATION_PATH), 'utf8');
}

/** Applies the Supabase migration to a database, as the Supabase CLI would: as postgres, one transaction. */
export async function applySupabaseMigration(url: string): Promise<void> {
  const sql = await supabaseMigrationSql();
  await withRoleLock(() => adminQuery(`begin;\n${sql}\ncommit;`, [], url));
}

export interface SupabaseCatalog extends TestDatabase {
  /** Backstop's own login role (member of backstop_service): what BACKSTOP_DATABASE_URL holds. */
  serviceUrl: string;
  /** A pool on serviceUrl. */
  pool: Pool;
  /** PostgREST's login role: NOINHERIT, granted anon, authenticated and service_role. */
  apiUrl: string;
  /**
   * The edge function's connection (SUPABASE_DB_URL is postgres, a member of backstop_service
   * and of the API roles): NOINHERIT here, so it can do nothing until its session sets a role.
   */
  functionUrl: string;
  serviceRole: string;
  /** Closes the pool, drops the database, the login roles and (when unused) backstop_service. */
  close(): Promise<void>;
}

/** A new Supabase-like project with Backstop's catalog applied by the Supabase migration. */
export async function createSupabaseCatalog(prefix = 'sbcatalog'): Promise<SupabaseCatalog> {
  const suffix = randomBytes(4).toString('hex');
  const serviceRole = `backstop_login_${suffix}`;
  const apiRole = `pgrst_${suffix}`;
  const functionRole = `edge_fn_${suffix}`;
  const password = randomBytes(12).toString('hex');
  const project = await createSupabaseProject(prefix);
  let pool: Pool | undefined;
  const close = async () => {
    await pool?.end().catch(() => {});
    await project.drop();
    await adminQuery(`drop role if exists ${serviceRole}`);
    await adminQuery(`drop role if exists ${apiRole}`);
    await adminQuery(`drop role if exists ${functionRole}`);
    await dropServiceRoleIfUnused();
  };
  try {
    await applySupabaseMigration(project.url);
    await adminQuery(
      `create role ${serviceRole} login password '${password}' in role backstop_service;
       create role ${apiRole} login noinherit password '${password}';
       grant anon, authenticated, service_role to ${apiRole};
       create role ${functionRole} login noinherit password '${password}' in role backstop_service, authenticated;`,
    );
    const serviceUrl = urlAs(project.url, serviceRole, password);
    pool = createPool(serviceUrl, { max: 5 });
    return {
      ...project,
      serviceUrl,
      pool,
      apiUrl: urlAs(project.url, apiRole, password),
      functionUrl: urlAs(project.url, functionRole, password),
      serviceRole,
      close,
    };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

export async function dropServiceRoleIfUnused(): Promise<void> {
  await withRoleLock(async () => {
    // A migration applying in another file's database may touch the role's catalog row at
    // the same moment ("tuple concurrently updated", XX000): try again, a few times.
    for (let tries = 1; ; tries++) {
      try {
        await adminQuery('drop role if exists backstop_service');
        return;
      } catch (error) {
        // Another test file's database still grants it something: that file drops it.
        if (pgErrorCode(error) === DEPENDENT_OBJECTS_STILL_EXIST) return;
        if (pgErrorCode(error) !== 'XX000' || tries >= 5) throw error;
      }
    }
  });
}

function urlAs(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
}

export type ApiRole = 'anon' | 'authenticated' | 'service_role';

/**
 * One transaction as PostgREST runs a request: the login role switches to the request's role
 * and publishes the JWT claims, both transaction-local, then the statement runs. Rolled back
 * unless `commit`.
 */
export async function asApiRole<T extends pg.QueryResultRow = pg.QueryResultRow>(
  apiUrl: string,
  role: ApiRole,
  claims: Record<string, unknown>,
  sql: string,
  values: unknown[] = [],
  options: { commit?: boolean } = {},
): Promise<pg.QueryResult<T>> {
  const client = new pg.Client({ connectionString: apiUrl, types: catalogTypes });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('begin');
    await client.query(`select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, [role, JSON.stringify(claims)]);
    const result = await client.query<T>(sql, values);
    await client.query(options.commit ? 'commit' : 'rollback');
    return result;
  } finally {
    await client.end();
  }
}

/** Organisations A and B, their users, targets, runs and events, inserted as the platform (superuser). */
export interface OrgFixture {
  users: { adminA: string; memberA: string; adminB: string; outsider: string };
  orgs: { a: string; b: string };
  targets: { a: string; b: string; none: string };
  runs: { a: string; b: string; none: string };
  events: { a: number; b: number; none: number };
  /** Secrets stored on the targets: must never reach an API role. */
  secrets: string[];
  /**
   * What only Backstop's own side may read, as seeded on every target, run and event: each
   * protected column (table.column) and a marker its value carries, unique to this fixture.
   */
  protectedColumns: Record<ProtectedColumn, string>;
}

export const PROTECTED_COLUMNS = [
  'targets.database_url',
  'targets.notifications',
  'targets.store_url',
  'targets.options',
  'runs.lease_id',
  'runs.claimed_by',
  'runs.artifact',
  'runs.executor',
  'runs.error_message',
  'runs.verification',
  'run_events.message',
  'run_events.data',
] as const;
export type ProtectedColumn = (typeof PROTECTED_COLUMNS)[number];

export async function seedOrganizations(url: string): Promise<OrgFixture> {
  const id = () => crypto.randomUUID();
  const users = { adminA: id(), memberA: id(), adminB: id(), outsider: id() };
  const orgs = { a: id(), b: id() };
  const targets = { a: id(), b: id(), none: id() };
  const runs = { a: id(), b: id(), none: id() };
  const suffix = randomBytes(3).toString('hex');
  const secrets = [`pw-${randomBytes(8).toString('hex')}`, `hook-${randomBytes(8).toString('hex')}`];
  await adminQuery(
    `insert into auth.users (id, aud, role, email) select u, 'authenticated', 'authenticated', u || '@example.com' from unnest($1::uuid[]) u`,
    [Object.values(users)],
    url,
  );
  await adminQuery(`insert into backstop.organizations (id, name) values ($1, 'Org A'), ($2, 'Org B')`, [orgs.a, orgs.b], url);
  await adminQuery(
    `insert into backstop.organization_members (organization_id, user_id, role) values ($1, $3, 'admin'), ($1, $4, 'member'), ($2, $5, 'admin')`,
    [orgs.a, orgs.b, users.adminA, users.memberA, users.adminB],
    url,
  );
  const notifications = JSON.stringify([{ id: 'c1', kind: 'webhook', url: `https://hooks.example.com/${secrets[1]}`, secret: secrets[1], on: ['failed'] }]);
  const marker = (name: string) => `${name}-${randomBytes(6).toString('hex')}`;
  const leaseId = crypto.randomUUID();
  const protectedColumns: Record<ProtectedColumn, string> = {
    'targets.database_url': secrets[0]!,
    'targets.notifications': secrets[1]!,
    'targets.store_url': marker('bucket'),
    'targets.options': marker('option'),
    'runs.lease_id': leaseId,
    'runs.claimed_by': marker('runner'),
    'runs.artifact': marker('prefix'),
    'runs.executor': marker('workflow'),
    'runs.error_message': marker('host'),
    'runs.verification': marker('scratch'),
    'run_events.message': marker('claimer'),
    'run_events.data': marker('upload'),
  };
  const p = protectedColumns;
  for (const [key, org] of [
    ['a', orgs.a],
    ['b', orgs.b],
    ['none', null],
  ] as const) {
    await adminQuery(
      `insert into backstop.targets (id, name, database_url, store_url, organization_id, notifications, options)
       values ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)`,
      [
        targets[key],
        `t-${key}-${suffix}`,
        `postgres://app:${secrets[0]}@db.example.com/app`,
        `s3://${p['targets.store_url']}/backups?endpoint=https://minio.internal`,
        org,
        notifications,
        JSON.stringify({ profile: 'default', restoreTo: [`${p['targets.options']}.internal:5432`] }),
      ],
      url,
    );
    // A finished run as Backstop leaves it: the lease and runner stay recorded on it.
    await adminQuery(
      `insert into backstop.runs (id, target_id, status, deadline_at, finished_at, lease_id, claimed_by, artifact, executor, error_message, verification)
       values ($1, $2, 'succeeded', now() + interval '1 hour', now(), $3, $4, $5::jsonb, $6::jsonb, $7, $8::jsonb)`,
      [
        runs[key],
        targets[key],
        leaseId,
        `worker ${p['runs.claimed_by']}.internal:4242`,
        JSON.stringify({ storeUrl: 's3://backups', prefix: `t-${key}/${p['runs.artifact']}`, files: [] }),
        JSON.stringify({ kind: 'github', htmlUrl: `https://github.com/acme/${p['runs.executor']}/actions/runs/1` }),
        `restore into ${p['runs.error_message']}.internal failed`,
        JSON.stringify({ status: 'failed', error: { message: `scratch database ${p['runs.verification']} unreachable` } }),
      ],
      url,
    );
  }
  const events = { a: 0, b: 0, none: 0 };
  for (const key of ['a', 'b', 'none'] as const) {
    const [row] = await adminQuery<{ id: number }>(
      `insert into backstop.run_events (run_id, attempt, kind, status, message, data) values ($1, 1, 'claimed', 'running', $2, $3::jsonb) returning id`,
      [runs[key], `claimed by ${p['run_events.message']}`, JSON.stringify({ storeUrl: 's3://backups', key: 'x', uploadId: p['run_events.data'] })],
      url,
    );
    events[key] = Number(row!.id);
  }
  return { users, orgs, targets, runs, events, secrets, protectedColumns };
}

export interface EdgeSessions {
  asCaller(claims: Record<string, unknown>, text: string, values: unknown[]): Promise<Record<string, unknown>[]>;
  asService(text: string, values: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/** The edge function's two database sessions, as the Deno shell opens them, on node-postgres. */
export function edgeSessions(url: string): EdgeSessions {
  const pool = createPool(url, { max: 4, applicationName: 'backstop:trigger-backup' });
  const inSession = async (setup: string, setupValues: unknown[], text: string, values: unknown[]) => {
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query(setup, setupValues);
      const { rows } = await client.query(text, values);
      await client.query('commit');
      return rows;
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };
  return {
    asCaller: (claims, text, values) => inSession(CALLER_SESSION_SQL, [JSON.stringify(claims)], text, values),
    asService: (text, values) => inSession(SERVICE_SESSION_SQL, [], text, values),
    close: () => pool.end(),
  };
}
