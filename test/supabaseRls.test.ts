import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { migrate, readMigrations } from '../src/db/migrate.ts';
import { createPool, pgErrorCode } from '../src/db/pool.ts';
import { buildSupabaseMigration, CATALOG_SECURITY_PATH } from '../src/supabase/supabaseMigration.ts';
import { repoRoot } from './support/cli.ts';
import { adminQuery } from './support/pg.ts';
import { createSupabaseProject } from './support/supabase.ts';
import {
  applySupabaseMigration,
  asApiRole,
  createSupabaseCatalog,
  dropServiceRoleIfUnused,
  seedOrganizations,
  supabaseMigrationSql,
  type ApiRole,
  type OrgFixture,
  type SupabaseCatalog,
} from './support/supabaseCatalog.ts';

const INSUFFICIENT_PRIVILEGE = '42501';

type ActorName = 'anon' | 'outsider' | 'memberA' | 'adminA' | 'adminB' | 'service_role' | 'backstop_service';
type TableName = 'targets' | 'runs' | 'run_events' | 'organization_members';
type Operation = 'select' | 'insert' | 'update' | 'delete';
type UserKey = keyof OrgFixture['users'];

/** How each actor reaches the database: PostgREST's session with a role and claims, or Backstop's own login. */
const ACTORS: Record<ActorName, { role: ApiRole; user?: UserKey } | 'backstop_service'> = {
  anon: { role: 'anon' },
  outsider: { role: 'authenticated', user: 'outsider' },
  memberA: { role: 'authenticated', user: 'memberA' },
  adminA: { role: 'authenticated', user: 'adminA' },
  adminB: { role: 'authenticated', user: 'adminB' },
  service_role: { role: 'service_role' },
  backstop_service: 'backstop_service',
};

const ALL_ROWS = { targets: ['a', 'b', 'none'], runs: ['a', 'b', 'none'], run_events: ['a', 'b', 'none'], organization_members: ['adminA', 'adminB', 'memberA'] };
const NO_ROWS = { targets: [], runs: [], run_events: [], organization_members: [] };

/**
 * The expectations, one row per actor. SELECT: the rows the actor sees (targets, runs and
 * events by their organisation, memberships by user), or 'error' when it may not even ask.
 * Writes: every INSERT, UPDATE and DELETE on every table is either allowed or denied.
 */
const EXPECTED: Record<ActorName, { select: Record<TableName, string[] | 'error'>; writes: 'allowed' | 'denied' }> = {
  anon: { select: { targets: 'error', runs: 'error', run_events: 'error', organization_members: 'error' }, writes: 'denied' },
  outsider: { select: NO_ROWS, writes: 'denied' },
  memberA: { select: { ...NO_ROWS, organization_members: ['memberA'] }, writes: 'denied' },
  adminA: { select: { targets: ['a'], runs: ['a'], run_events: ['a'], organization_members: ['adminA', 'memberA'] }, writes: 'denied' },
  adminB: { select: { targets: ['b'], runs: ['b'], run_events: ['b'], organization_members: ['adminB'] }, writes: 'denied' },
  service_role: { select: ALL_ROWS, writes: 'allowed' },
  backstop_service: { select: ALL_ROWS, writes: 'allowed' },
};

/** One statement per table and operation, aimed at organisation A's rows (what admin A might try). */
function statementFor(table: TableName, operation: Operation, f: OrgFixture): { sql: string; values: unknown[] } {
  const statements: Record<TableName, Record<Operation, { sql: string; values: unknown[] }>> = {
    targets: {
      select: { sql: 'select id as key from backstop.targets', values: [] },
      insert: {
        sql: `insert into backstop.targets (name, database_url, store_url, organization_id) values ('intruder', 'postgres://x@h/db', 'file:///tmp/x', $1)`,
        values: [f.orgs.a],
      },
      update: { sql: `update backstop.targets set store_url = 'file:///elsewhere' where id = $1`, values: [f.targets.a] },
      delete: { sql: 'delete from backstop.targets where id = $1', values: [f.targets.a] },
    },
    runs: {
      select: { sql: 'select id as key from backstop.runs', values: [] },
      insert: { sql: `insert into backstop.runs (target_id, deadline_at) values ($1, now() + interval '1 hour')`, values: [f.targets.a] },
      update: { sql: `update backstop.runs set error_message = 'tampered' where id = $1`, values: [f.runs.a] },
      delete: { sql: 'delete from backstop.runs where id = $1', values: [f.runs.a] },
    },
    run_events: {
      select: { sql: 'select id::text as key from backstop.run_events', values: [] },
      insert: { sql: `insert into backstop.run_events (run_id, attempt, kind) values ($1, 1, 'forged')`, values: [f.runs.a] },
      update: { sql: `update backstop.run_events set message = 'tampered' where id = $1`, values: [f.events.a] },
      delete: { sql: 'delete from backstop.run_events where id = $1', values: [f.events.a] },
    },
    organization_members: {
      select: { sql: 'select user_id as key from backstop.organization_members', values: [] },
      // The escalations: join organisation A as its admin, promote oneself, remove its admin.
      insert: { sql: `insert into backstop.organization_members (organization_id, user_id, role) values ($1, $2, 'admin')`, values: [f.orgs.a, f.users.outsider] },
      update: { sql: `update backstop.organization_members set role = 'admin' where user_id = $1`, values: [f.users.memberA] },
      delete: { sql: 'delete from backstop.organization_members where user_id = $1', values: [f.users.adminA] },
    },
  };
  return statements[table][operation];
}

describe('Backstop catalog in Supabase: row-level security for every role × operation', () => {
  let catalog: SupabaseCatalog;
  let fixture: OrgFixture;
  let keyOf: Map<string, string>;

  before(async () => {
    catalog = await createSupabaseCatalog('sbrls');
    fixture = await seedOrganizations(catalog.url);
    keyOf = new Map<string, string>();
    for (const group of [fixture.targets, fixture.runs, fixture.users] as Record<string, string>[]) {
      for (const [key, id] of Object.entries(group)) keyOf.set(id, key);
    }
    for (const [key, id] of Object.entries(fixture.events)) keyOf.set(String(id), key);
  });
  after(async () => {
    await catalog?.close();
  });

  /** Runs one statement as the actor, in a transaction that is rolled back. */
  async function runAs(actor: ActorName, sql: string, values: unknown[]): Promise<pg.QueryResult> {
    const how = ACTORS[actor];
    if (how === 'backstop_service') {
      const client = await catalog.pool.connect();
      try {
        await client.query('begin');
        return await client.query(sql, values);
      } finally {
        await client.query('rollback');
        client.release();
      }
    }
    const claims = how.user ? { sub: fixture.users[how.user], role: how.role, aud: 'authenticated' } : { role: how.role };
    return asApiRole(catalog.apiUrl, how.role, claims, sql, values);
  }

  for (const [actor, expected] of Object.entries(EXPECTED) as Array<[ActorName, (typeof EXPECTED)[ActorName]]>) {
    for (const table of ['targets', 'runs', 'run_events', 'organization_members'] as const) {
      const seen = expected.select[table];
      it(`${actor} SELECT ${table}: ${seen === 'error' ? 'refused' : seen.length === 0 ? 'no rows' : seen.join(', ')}`, async () => {
        const { sql, values } = statementFor(table, 'select', fixture);
        if (seen === 'error') {
          await assert.rejects(runAs(actor, sql, values), (error) => pgErrorCode(error) === INSUFFICIENT_PRIVILEGE);
          return;
        }
        const { rows } = await runAs(actor, sql, values);
        assert.deepEqual(rows.map((row) => keyOf.get(String(row.key)) ?? `unknown ${row.key}`).sort(), [...seen].sort());
      });
      for (const operation of ['insert', 'update', 'delete'] as const) {
        it(`${actor} ${operation.toUpperCase()} ${table}: ${expected.writes}`, async () => {
          const { sql, values } = statementFor(table, operation, fixture);
          let outcome: { rowCount: number } | { code: string | undefined };
          try {
            const result = await runAs(actor, sql, values);
            outcome = { rowCount: result.rowCount ?? 0 };
          } catch (error) {
            outcome = { code: pgErrorCode(error) };
          }
          if (expected.writes === 'allowed') assert.deepEqual(outcome, { rowCount: 1 });
          else assert.ok('code' in outcome ? outcome.code === INSUFFICIENT_PRIVILEGE : outcome.rowCount === 0, `expected a refusal, got ${JSON.stringify(outcome)}`);
        });
      }
    }
  }

  it('the writes above were all rolled back: the fixture is intact', async () => {
    const [counts] = await adminQuery<Record<string, number>>(
      `select (select count(*)::int from backstop.targets) as targets, (select count(*)::int from backstop.runs) as runs,
              (select count(*)::int from backstop.run_events) as events, (select count(*)::int from backstop.organization_members) as members,
              (select count(*)::int from backstop.organization_members where role = 'admin') as admins`,
      [],
      catalog.url,
    );
    assert.deepEqual(counts, { targets: 3, runs: 3, events: 3, members: 3, admins: 2 });
  });

  it('database_url and notification secrets can never be selected by a signed-in user, even an admin', async () => {
    const admin = { sub: fixture.users.adminA, role: 'authenticated', aud: 'authenticated' };
    for (const sql of [
      'select database_url from backstop.targets',
      'select notifications from backstop.targets',
      'select * from backstop.targets',
      'select t from backstop.targets t',
      'select to_jsonb(t) from backstop.targets t',
      'select r.id, t.database_url from backstop.runs r join backstop.targets t on t.id = r.target_id',
      `select 1 from backstop.targets where database_url like 'postgres://%'`,
    ]) {
      await assert.rejects(asApiRole(catalog.apiUrl, 'authenticated', admin, sql), (error) => pgErrorCode(error) === INSUFFICIENT_PRIVILEGE, sql);
    }
    const { rows } = await asApiRole(
      catalog.apiUrl,
      'authenticated',
      admin,
      `select t.id, t.name, t.store_url, t.options, t.organization_id, r.status, e.message
       from backstop.targets t join backstop.runs r on r.target_id = t.id join backstop.run_events e on e.run_id = r.id`,
    );
    assert.equal(rows.length, 1);
    for (const secret of fixture.secrets) assert.ok(!JSON.stringify(rows).includes(secret));
    const service = await asApiRole(catalog.apiUrl, 'service_role', { role: 'service_role' }, 'select database_url from backstop.targets where id = $1', [fixture.targets.a]);
    assert.match(service.rows[0]!.database_url as string, new RegExp(fixture.secrets[0]!));
  });

  it('auth.uid() and auth.jwt() read the claims PostgREST sets for the transaction, and nothing outside it', async () => {
    const claims = { sub: fixture.users.memberA, role: 'authenticated', aud: 'authenticated' };
    const { rows } = await asApiRole(catalog.apiUrl, 'authenticated', claims, `select auth.uid() as uid, auth.jwt()->>'aud' as aud, current_user as role`);
    assert.deepEqual(rows[0], { uid: fixture.users.memberA, aud: 'authenticated', role: 'authenticated' });
    const [outside] = await adminQuery<{ uid: string | null }>('select auth.uid() as uid', [], catalog.url);
    assert.equal(outside!.uid, null);
  });

  it('every catalog table has RLS enabled and forced (but organization_members, read by the helpers), and a policy for backstop_service', async () => {
    const tables = await adminQuery<{ name: string; enabled: boolean; forced: boolean; service_policy: boolean }>(
      `select c.relname as name, c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
              exists (select 1 from pg_policies p where p.schemaname = 'backstop' and p.tablename = c.relname
                      and p.policyname = 'backstop_service_all' and p.roles = '{backstop_service}') as service_policy
       from pg_class c where c.relnamespace = 'backstop'::regnamespace and c.relkind in ('r', 'p') order by 1`,
      [],
      catalog.url,
    );
    assert.ok(tables.length >= 9, `catalog tables: ${tables.map((t) => t.name).join(', ')}`);
    for (const table of tables) {
      assert.deepEqual(table, { name: table.name, enabled: true, forced: table.name !== 'organization_members', service_policy: true });
    }
  });

  it('anon, authenticated and PUBLIC hold no privilege but SELECT where a policy decides; nothing on sequences or catalog functions', async () => {
    const grants = await adminQuery<{ grantee: string; object: string; privilege: string }>(
      `select coalesce(r.rolname, 'PUBLIC') as grantee, c.relname as object, a.privilege_type as privilege
       from pg_class c cross join lateral aclexplode(c.relacl) a left join pg_roles r on r.oid = a.grantee
       where c.relnamespace = 'backstop'::regnamespace and (a.grantee = 0 or r.rolname in ('anon', 'authenticated'))
       union all
       select coalesce(r.rolname, 'PUBLIC'), c.relname || '.' || att.attname, a.privilege_type
       from pg_attribute att join pg_class c on c.oid = att.attrelid cross join lateral aclexplode(att.attacl) a
       left join pg_roles r on r.oid = a.grantee
       where c.relnamespace = 'backstop'::regnamespace and (a.grantee = 0 or r.rolname in ('anon', 'authenticated'))
       order by 1, 2, 3`,
      [],
      catalog.url,
    );
    const tableGrants = grants.filter((grant) => !grant.object.includes('.'));
    assert.deepEqual(tableGrants, [
      { grantee: 'authenticated', object: 'organization_members', privilege: 'SELECT' },
      { grantee: 'authenticated', object: 'organizations', privilege: 'SELECT' },
      { grantee: 'authenticated', object: 'run_events', privilege: 'SELECT' },
      { grantee: 'authenticated', object: 'runs', privilege: 'SELECT' },
    ]);
    const columnGrants = grants.filter((grant) => grant.object.includes('.'));
    assert.ok(columnGrants.every((grant) => grant.grantee === 'authenticated' && grant.privilege === 'SELECT' && grant.object.startsWith('targets.')));
    const columns = columnGrants.map((grant) => grant.object.slice('targets.'.length));
    assert.ok(columns.includes('name') && columns.includes('organization_id'));
    assert.ok(!columns.includes('database_url') && !columns.includes('notifications'));

    const [privileges] = await adminQuery<Record<string, boolean>>(
      `select
         bool_or(has_schema_privilege('anon', n.oid, 'USAGE')) as anon_schema_usage,
         (select bool_or(has_sequence_privilege(role, s.oid, 'USAGE,SELECT,UPDATE'))
          from pg_class s, unnest(array['anon', 'authenticated']) role
          where s.relnamespace = 'backstop'::regnamespace and s.relkind = 'S') as api_sequences,
         (select bool_or(has_function_privilege(role, p.oid, 'EXECUTE'))
          from pg_proc p, unnest(array['anon', 'authenticated']) role
          where p.pronamespace = 'backstop'::regnamespace) as api_catalog_functions,
         (select bool_or(has_function_privilege('anon', p.oid, 'EXECUTE'))
          from pg_proc p where p.pronamespace = 'backstop_private'::regnamespace) as anon_helpers
       from pg_namespace n where n.nspname in ('backstop', 'backstop_private')`,
      [],
      catalog.url,
    );
    assert.deepEqual(privileges, { anon_schema_usage: false, api_sequences: false, api_catalog_functions: false, anon_helpers: false });
  });

  it('helpers are SECURITY DEFINER with an empty search_path in backstop_private; policies evaluate auth.uid() once per query', async () => {
    const helpers = await adminQuery<{ name: string; definer: boolean; config: string[] }>(
      `select p.proname as name, p.prosecdef as definer, p.proconfig as config from pg_proc p
       where p.pronamespace = 'backstop_private'::regnamespace order by 1`,
      [],
      catalog.url,
    );
    assert.deepEqual(helpers, [
      { name: 'is_org_admin', definer: true, config: ['search_path=""'] },
      { name: 'is_org_member', definer: true, config: ['search_path=""'] },
    ]);
    const policies = await adminQuery<{ tablename: string; qual: string | null }>(
      `select tablename, qual from pg_policies where schemaname = 'backstop' and qual like '%auth.uid()%'`,
      [],
      catalog.url,
    );
    assert.ok(policies.length >= 5);
    for (const policy of policies) {
      const bare = policy.qual!.replaceAll(/\( SELECT auth\.uid\(\) AS uid\)/g, '');
      assert.ok(!bare.includes('auth.uid()'), `${policy.tablename}: ${policy.qual}`);
    }
  });

  it("Backstop's own migrator, connected as its login role, finds the catalog up to date", async () => {
    const pool = createPool(catalog.serviceUrl, { max: 1 });
    try {
      assert.deepEqual(await migrate(pool), []);
      const { rows } = await pool.query<{ id: number }>('select id from backstop.migrations order by id');
      assert.deepEqual(rows.map((row) => row.id), (await readMigrations()).map((migration) => migration.id));
    } finally {
      await pool.end();
    }
  });
});

describe('the Supabase migration file', () => {
  it('is exactly what scripts/supabaseMigration.ts generates from the catalog migrations and the security part', async () => {
    const security = await fs.readFile(path.join(repoRoot, CATALOG_SECURITY_PATH), 'utf8');
    const generated = buildSupabaseMigration(await readMigrations(), security);
    assert.ok((await supabaseMigrationSql()) === generated, 'out of date: run `npx node scripts/supabaseMigration.ts` and commit the result');
  });

  it('composes with Backstop’s migrator in either order, and applies twice without change', async () => {
    const project = await createSupabaseProject('sbmig');
    try {
      // Backstop connected first (as postgres) and created its plain catalog.
      const pool = createPool(project.url, { max: 1 });
      try {
        await migrate(pool);
      } finally {
        await pool.end();
      }
      await adminQuery(`insert into backstop.targets (name, database_url, store_url) values ('early', 'postgres://u:p@h/db', 'file:///b')`, [], project.url);
      await applySupabaseMigration(project.url);
      await applySupabaseMigration(project.url);
      const [state] = await adminQuery<{ migrations: number; targets: number; rls: boolean; policies: number }>(
        `select (select count(*)::int from backstop.migrations) as migrations, (select count(*)::int from backstop.targets) as targets,
                (select relrowsecurity from pg_class where oid = 'backstop.targets'::regclass) as rls,
                (select count(*)::int from pg_policies where schemaname = 'backstop' and tablename = 'targets') as policies`,
        [],
        project.url,
      );
      assert.deepEqual(state, { migrations: (await readMigrations()).length, targets: 1, rls: true, policies: 2 });
    } finally {
      await project.drop();
      await dropServiceRoleIfUnused();
    }
  });
});
