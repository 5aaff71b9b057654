import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { migrate, readMigrations } from '../src/db/migrate.ts';
import { pgErrorCode } from '../src/core/pgErrors.ts';
import { createPool } from '../src/db/pool.ts';
import { recordSignIn } from '../src/operations/recordAudit.ts';
import { buildSupabaseMigration, CATALOG_SECURITY_PATH } from '../src/supabaseCatalog/supabaseMigration.ts';
import { repoRoot } from './support/cli.ts';
import { adminQuery } from './support/pg.ts';
import { createSupabaseProject } from './support/supabase.ts';
import {
  applySupabaseMigration,
  asApiRole,
  createSupabaseCatalog,
  dropServiceRoleIfUnused,
  PROTECTED_COLUMNS,
  seedOrganizations,
  supabaseMigrationSql,
  type ApiRole,
  type OrgFixture,
  type SupabaseCatalog,
} from './support/supabaseCatalog.ts';

const INSUFFICIENT_PRIVILEGE = '42501';
const UNDEFINED_FUNCTION = '42883';

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
      `select t.id, t.name, t.schedule, t.organization_id, r.status, r.error_code, e.kind
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
      // The audit trail has read and append policies instead (see the audit test below).
      assert.deepEqual(table, { name: table.name, enabled: true, forced: table.name !== 'organization_members', service_policy: table.name !== 'audit_log' });
    }
  });

  it('the audit trail: only Backstop appends, through its own role; no role reads it from the API but service_role, and none changes, deletes or truncates an entry', async () => {
    // The intended path: Backstop's login (a member of backstop_service) records an action.
    const actor = { kind: 'token', id: randomUUID(), name: 'supabase audit', role: 'admin', address: '203.0.113.9', client: 'api' } as const;
    const recorded = await recordSignIn(catalog.pool, actor);
    const snapshot = async () => adminQuery('select * from backstop.audit_log order by id', [], catalog.url);
    const before = await snapshot();
    assert.ok(before.some((row) => Number(row.id) === recorded.id && row.actor_name === 'supabase audit'));

    const forged = `insert into backstop.audit_log (actor_kind, actor_name, client, action, outcome) values ('user', 'forger', 'api', 'sign-in', 'succeeded')`;
    const attempts = {
      select: 'select count(*)::int as n from backstop.audit_log',
      insert: forged,
      update: `update backstop.audit_log set actor_name = 'someone else', outcome = 'refused', error_code = 'FORBIDDEN' where id = ${recorded.id}`,
      delete: `delete from backstop.audit_log where id = ${recorded.id}`,
      truncate: 'truncate backstop.audit_log',
    };
    type Attempt = keyof typeof attempts;
    const expected: Record<ActorName | 'postgres', Record<Attempt, 'allowed' | 'refused'>> = {
      anon: { select: 'refused', insert: 'refused', update: 'refused', delete: 'refused', truncate: 'refused' },
      outsider: { select: 'refused', insert: 'refused', update: 'refused', delete: 'refused', truncate: 'refused' },
      memberA: { select: 'refused', insert: 'refused', update: 'refused', delete: 'refused', truncate: 'refused' },
      adminA: { select: 'refused', insert: 'refused', update: 'refused', delete: 'refused', truncate: 'refused' },
      adminB: { select: 'refused', insert: 'refused', update: 'refused', delete: 'refused', truncate: 'refused' },
      service_role: { select: 'allowed', insert: 'refused', update: 'refused', delete: 'refused', truncate: 'refused' },
      backstop_service: { select: 'allowed', insert: 'allowed', update: 'refused', delete: 'refused', truncate: 'refused' },
      // The project's owner role (a superuser here, as the Supabase CLI's migrations run):
      // privileges do not bind it, the trigger does.
      postgres: { select: 'allowed', insert: 'allowed', update: 'refused', delete: 'refused', truncate: 'refused' },
    };
    const seen: string[] = [];
    for (const [who, cells] of Object.entries(expected) as Array<[ActorName | 'postgres', Record<Attempt, 'allowed' | 'refused'>]>) {
      for (const [attempt, verdict] of Object.entries(cells) as Array<[Attempt, 'allowed' | 'refused']>) {
        // Each attempt is made for real and committed when it goes through (the inserts are
        // rolled back: they would be entries, and the point is the old one staying as it was).
        const sql = attempts[attempt];
        const commit = attempt !== 'insert' && attempt !== 'select';
        const run = async () => {
          if (who === 'postgres') {
            if (attempt === 'insert') return adminQuery(`begin; ${sql}; rollback;`, [], catalog.url);
            return adminQuery(sql, [], catalog.url);
          }
          const how = ACTORS[who];
          if (how === 'backstop_service') {
            if (commit) return catalog.pool.query(sql);
            return runAs(who, sql, []);
          }
          const claims = how.user ? { sub: fixture.users[how.user], role: how.role, aud: 'authenticated' } : { role: how.role };
          return asApiRole(catalog.apiUrl, how.role, claims, sql, [], { commit });
        };
        let outcome: string;
        try {
          await run();
          outcome = 'allowed';
        } catch (error) {
          outcome = pgErrorCode(error) === INSUFFICIENT_PRIVILEGE ? 'refused' : `error ${pgErrorCode(error)}: ${(error as Error).message}`;
        }
        seen.push(`${who} ${attempt}: ${outcome}`);
        assert.equal(outcome, verdict, `${who} ${attempt.toUpperCase()}`);
      }
    }
    assert.deepEqual(await snapshot(), before, `every entry as it was after: ${seen.join('; ')}`);
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
    ]);
    const columnGrants = grants.filter((grant) => grant.object.includes('.'));
    assert.ok(
      columnGrants.every((grant) => grant.grantee === 'authenticated' && grant.privilege === 'SELECT'),
      JSON.stringify(columnGrants),
    );
    const columns = columnGrants.map((grant) => grant.object);
    for (const readable of ['targets.name', 'targets.organization_id', 'runs.status', 'runs.target_id', 'run_events.kind', 'run_events.run_id']) {
      assert.ok(columns.includes(readable), `${readable} is granted`);
    }
    for (const column of PROTECTED_COLUMNS) assert.ok(!columns.includes(column), `${column} is not granted`);
    assert.deepEqual([...new Set(columns.map((column) => column.split('.')[0]))].sort(), ['run_events', 'runs', 'targets']);

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

  it('helpers take no user id: SECURITY DEFINER with an empty search_path, answering for the request’s user only', async () => {
    const helpers = await adminQuery<{ name: string; args: string; definer: boolean; config: string[] }>(
      `select p.proname as name, pg_get_function_identity_arguments(p.oid) as args, p.prosecdef as definer, p.proconfig as config
       from pg_proc p where p.pronamespace = 'backstop_private'::regnamespace order by 1`,
      [],
      catalog.url,
    );
    assert.deepEqual(helpers, [
      { name: 'is_org_admin', args: 'org uuid', definer: true, config: ['search_path=""'] },
      { name: 'is_org_member', args: 'org uuid', definer: true, config: ['search_path=""'] },
      { name: 'request_user_id', args: '', definer: false, config: ['search_path=""'] },
    ]);
    const policies = await adminQuery<{ tablename: string; policyname: string; qual: string | null }>(
      `select tablename, policyname, qual from pg_policies where schemaname = 'backstop' and roles = '{authenticated}'`,
      [],
      catalog.url,
    );
    assert.equal(policies.length, 5);
    for (const policy of policies) {
      // No policy hands a helper a user id; auth.uid() appears only as an initplan, once per query.
      assert.doesNotMatch(policy.qual!, /is_org_(admin|member)\([^)]*,/, `${policy.tablename}.${policy.policyname}: ${policy.qual}`);
      const bare = policy.qual!.replaceAll(/\( SELECT auth\.uid\(\) AS uid\)/g, '');
      assert.ok(!bare.includes('auth.uid()'), `${policy.tablename}: ${policy.qual}`);
    }
  });

  // What only Backstop's own side may read: every API role × every protected column, read
  // from organisation A's rows (the ones admin A sees). Column privileges are checked before
  // any row is, so a refusal does not depend on which rows the policies let through.
  const COLUMN_READS: Record<ActorName, 'allowed' | 'refused'> = {
    anon: 'refused',
    outsider: 'refused',
    memberA: 'refused',
    adminA: 'refused',
    adminB: 'refused',
    service_role: 'allowed',
    backstop_service: 'allowed',
  };
  for (const [actor, expected] of Object.entries(COLUMN_READS) as Array<[ActorName, 'allowed' | 'refused']>) {
    for (const column of PROTECTED_COLUMNS) {
      it(`${actor} reads ${column}: ${expected}`, async () => {
        const [table, name] = column.split('.') as [TableName, string];
        const id = table === 'targets' ? fixture.targets.a : table === 'runs' ? fixture.runs.a : fixture.events.a;
        const sql = `select ${name}::text as value from backstop.${table} where id = $1`;
        if (expected === 'refused') {
          await assert.rejects(runAs(actor, sql, [id]), (error) => pgErrorCode(error) === INSUFFICIENT_PRIVILEGE, `${actor}: ${sql}`);
          return;
        }
        const { rows } = await runAs(actor, sql, [id]);
        assert.equal(rows.length, 1);
        assert.ok(String(rows[0]!.value).includes(fixture.protectedColumns[column]), `${column}: ${rows[0]!.value}`);
      });
    }
  }

  it('an organisation admin cannot reach a protected column sideways: whole rows, row values, filters, sorts', async () => {
    const admin = { sub: fixture.users.adminA, role: 'authenticated', aud: 'authenticated' };
    const attempts: Array<[string, unknown[]]> = [
      ['select * from backstop.runs', []],
      ['select r from backstop.runs r', []],
      ['select to_jsonb(r) from backstop.runs r', []],
      ['select row_to_json(e) from backstop.run_events e', []],
      ['select * from backstop.run_events', []],
      // Guessing a value through a predicate is reading the column too.
      ['select id from backstop.runs where lease_id = $1', [fixture.protectedColumns['runs.lease_id']]],
      [`select id from backstop.runs where claimed_by like '%' order by claimed_by`, []],
      [`select id from backstop.runs where artifact->>'prefix' is not null`, []],
      [`select id from backstop.run_events order by data`, []],
      [`select id from backstop.targets where store_url like 's3://%'`, []],
    ];
    for (const [sql, values] of attempts) {
      await assert.rejects(asApiRole(catalog.apiUrl, 'authenticated', admin, sql, values), (error) => pgErrorCode(error) === INSUFFICIENT_PRIVILEGE, sql);
    }
  });

  it('every column an organisation admin may read, read at once, carries none of the protected values', async () => {
    const granted = await adminQuery<{ table: string; columns: string[] }>(
      `select c.relname as table, array_agg(att.attname::text order by att.attnum) as columns
       from pg_attribute att join pg_class c on c.oid = att.attrelid cross join lateral aclexplode(att.attacl) a
       join pg_roles r on r.oid = a.grantee
       where c.relnamespace = 'backstop'::regnamespace and r.rolname = 'authenticated' and a.privilege_type = 'SELECT'
       group by c.relname`,
      [],
      catalog.url,
    );
    assert.equal(granted.length, 3);
    const admin = { sub: fixture.users.adminA, role: 'authenticated', aud: 'authenticated' };
    for (const { table, columns } of granted) {
      const { rows } = await asApiRole(catalog.apiUrl, 'authenticated', admin, `select ${columns.map((column) => `"${column}"`).join(', ')} from backstop.${table}`);
      assert.equal(rows.length, 1, table);
      const seen = JSON.stringify(rows);
      for (const [column, value] of Object.entries(fixture.protectedColumns)) assert.ok(!seen.includes(value), `${table} shows ${column}: ${seen}`);
    }
  });

  it('tables only Backstop reads (tokens, runner tokens, the notification outbox, any table a later migration adds) refuse every API role but service_role', async () => {
    const readable = ['targets', 'runs', 'run_events', 'organizations', 'organization_members'];
    const tables = (
      await adminQuery<{ name: string }>(`select relname as name from pg_class where relnamespace = 'backstop'::regnamespace and relkind in ('r', 'p') order by 1`, [], catalog.url)
    )
      .map((row) => row.name)
      .filter((name) => !readable.includes(name));
    for (const table of ['api_tokens', 'runner_tokens', 'github_runner_tokens', 'notifications', 'migrations']) assert.ok(tables.includes(table), table);
    for (const table of tables) {
      const sql = `select count(*)::int as count from backstop.${table}`;
      for (const actor of ['anon', 'outsider', 'memberA', 'adminA'] as const) {
        await assert.rejects(runAs(actor, sql, []), (error) => pgErrorCode(error) === INSUFFICIENT_PRIVILEGE, `${actor}: ${sql}`);
      }
      const { rows } = await runAs('service_role', sql, []);
      assert.equal(typeof rows[0]!.count, 'number');
    }
  });

  it('the helpers read the same user auth.uid() reads, from either claim setting, and nobody without claims', async () => {
    const client = new pg.Client({ connectionString: catalog.url });
    await client.connect();
    try {
      const cases: Array<[string, string, string | null]> = [
        ['request.jwt.claims', JSON.stringify({ sub: fixture.users.adminA, role: 'authenticated' }), fixture.users.adminA],
        ['request.jwt.claim.sub', fixture.users.memberA, fixture.users.memberA],
        ['request.jwt.claims', JSON.stringify({ role: 'anon' }), null],
      ];
      for (const [setting, value, expected] of cases) {
        await client.query('begin');
        await client.query('select set_config($1, $2, true)', [setting, value]);
        const { rows } = await client.query('select backstop_private.request_user_id() as helper, auth.uid() as auth');
        await client.query('rollback');
        assert.deepEqual(rows[0], { helper: expected, auth: expected }, setting);
      }
    } finally {
      await client.end();
    }
  });

  it('is_org_admin / is_org_member answer only for the request’s user: asking about another user is impossible', async () => {
    const claimsOf = (user: UserKey) => ({ sub: fixture.users[user], role: 'authenticated', aud: 'authenticated' });
    // The oracle: an outsider (or a member, or B's admin) asking who administers organisation A.
    for (const user of ['outsider', 'memberA', 'adminB', 'adminA'] as const) {
      for (const helper of ['is_org_admin', 'is_org_member']) {
        await assert.rejects(
          asApiRole(catalog.apiUrl, 'authenticated', claimsOf(user), `select backstop_private.${helper}($1::uuid, $2::uuid) as answer`, [fixture.orgs.a, fixture.users.adminA]),
          (error) => pgErrorCode(error) === UNDEFINED_FUNCTION,
          `${user}: ${helper}(org, uid)`,
        );
      }
      // Nor through the helper that reads the request's user: it is the helpers' own.
      await assert.rejects(
        asApiRole(catalog.apiUrl, 'authenticated', claimsOf(user), 'select backstop_private.request_user_id()'),
        (error) => pgErrorCode(error) === INSUFFICIENT_PRIVILEGE,
      );
    }
    await assert.rejects(
      asApiRole(catalog.apiUrl, 'anon', { role: 'anon' }, 'select backstop_private.is_org_admin($1::uuid)', [fixture.orgs.a]),
      (error) => pgErrorCode(error) === INSUFFICIENT_PRIVILEGE,
    );
    // What is left answers for the caller alone: admin A is admin of A, not of B; the others of neither.
    const answers: Record<string, unknown> = {};
    for (const user of ['outsider', 'memberA', 'adminA', 'adminB'] as const) {
      const { rows } = await asApiRole(
        catalog.apiUrl,
        'authenticated',
        claimsOf(user),
        `select backstop_private.is_org_admin($1::uuid) as admin_a, backstop_private.is_org_admin($2::uuid) as admin_b,
                backstop_private.is_org_member($1::uuid) as member_a`,
        [fixture.orgs.a, fixture.orgs.b],
      );
      answers[user] = rows[0];
    }
    assert.deepEqual(answers, {
      outsider: { admin_a: false, admin_b: false, member_a: false },
      memberA: { admin_a: false, admin_b: false, member_a: true },
      adminA: { admin_a: true, admin_b: false, member_a: true },
      adminB: { admin_a: false, admin_b: true, member_a: false },
    });
    // No function left in backstop_private takes a user id at all.
    const [{ count }] = (await adminQuery<{ count: number }>(
      `select count(*)::int as count from pg_proc where pronamespace = 'backstop_private'::regnamespace and pronargs > 1`,
      [],
      catalog.url,
    )) as [{ count: number }];
    assert.equal(count, 0);
  });

  it("Backstop's own migrator, connected as its login role, finds the catalog up to date", async () => {
    const pool = createPool(catalog.serviceUrl, { max: 1 });
    try {
      assert.deepEqual(await migrate(pool), []);
      const { rows } = await pool.query<{ id: number }>('select id from backstop.migrations order by id');
      assert.deepEqual(
        rows.map((row) => row.id),
        (await readMigrations()).map((migration) => migration.id),
      );
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
