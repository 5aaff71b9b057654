/**
 * Databases that look like Supabase projects, on the shared test server.
 *
 * `createSupabaseProject` is what a new project has before the user does anything: the
 * platform's roles (cluster-wide, so created only when missing and left in place), the
 * managed schemas with their tables and migration history, auth.uid(), the extensions
 * schema, Supabase's event trigger and realtime publication, and its default privileges.
 * `addSupabaseApp` is what a user then builds: tables in public with RLS policies on
 * auth.uid(), foreign keys to auth.users, grants, a private schema with a trigger, users,
 * buckets and objects, and custom roles whose names carry a random suffix (roles are
 * cluster-wide and test files share the server).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { adminQuery, createTestDatabase, type TestDatabase } from './pg.ts';

/** Reserved roles as the platform makes them; `do` blocks, because CREATE ROLE has no IF NOT EXISTS. */
const reservedRoles: Array<[string, string]> = [
  ['anon', 'nologin noinherit'],
  ['authenticated', 'nologin noinherit'],
  ['service_role', 'nologin noinherit bypassrls'],
  ['authenticator', 'login noinherit'],
  ['supabase_admin', 'login superuser createrole createdb replication bypassrls'],
  ['supabase_auth_admin', 'login noinherit createrole'],
  ['supabase_storage_admin', 'login noinherit createrole'],
  ['dashboard_user', 'nologin createrole createdb replication'],
];

const roleSql = reservedRoles
  .map(([name, attributes]) => `do $$ begin create role ${name} ${attributes}; exception when duplicate_object or unique_violation then null; end $$;`)
  .join('\n');

const projectSql = `
  ${roleSql}
  grant anon, authenticated, service_role to authenticator;

  create schema if not exists auth;
  create schema if not exists storage;
  create schema if not exists extensions;
  create schema if not exists realtime;
  create extension if not exists "uuid-ossp" with schema extensions;
  create extension if not exists pgcrypto with schema extensions;
  grant usage on schema public, auth, storage, extensions to anon, authenticated, service_role;
  alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
  alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
  alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
  alter default privileges for role supabase_admin in schema public grant all on tables to anon, authenticated, service_role;

  create table if not exists auth.users (
    instance_id uuid,
    id uuid primary key,
    aud varchar(255),
    role varchar(255),
    email varchar(255) unique,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    created_at timestamptz,
    updated_at timestamptz
  );
  create table if not exists auth.refresh_tokens (
    id bigserial primary key,
    token varchar(255),
    user_id varchar(255),
    revoked boolean,
    created_at timestamptz
  );
  create table if not exists auth.schema_migrations (version varchar(255) primary key);
  insert into auth.schema_migrations values ('20171026211738'), ('20171026211808'), ('20171026211834') on conflict do nothing;
  create or replace function auth.uid() returns uuid language sql stable as $fn$
    select coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
  $fn$;
  create or replace function auth.jwt() returns jsonb language sql stable as $fn$
    select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
  $fn$;

  create table if not exists storage.buckets (
    id text primary key,
    name text not null unique,
    owner uuid references auth.users (id),
    public boolean default false,
    created_at timestamptz default now()
  );
  create table if not exists storage.objects (
    id uuid primary key default extensions.uuid_generate_v4(),
    bucket_id text references storage.buckets (id),
    name text,
    owner uuid references auth.users (id),
    metadata jsonb,
    created_at timestamptz default now()
  );
  alter table storage.objects enable row level security;
  create table if not exists storage.migrations (
    id integer primary key,
    name varchar(100) unique not null,
    hash varchar(40) not null,
    executed_at timestamp default current_timestamp
  );
  insert into storage.migrations (id, name, hash) values
    (0, 'create-migrations-table', 'e18db593bcde2aca2a408c4d1100f6abba2195df'),
    (1, 'initialmigration', '6ab16121fbaa08bbd11b712d05f358f9b555d777')
  on conflict do nothing;

  -- Supabase's own event trigger and publication: every project has them, owned by the platform.
  create or replace function extensions.grant_pg_net_access() returns event_trigger language plpgsql as $fn$ begin end $fn$;
  do $$ begin
    if not exists (select from pg_event_trigger where evtname = 'issue_pg_net_access') then
      create event trigger issue_pg_net_access on ddl_command_end when tag in ('CREATE EXTENSION')
        execute function extensions.grant_pg_net_access();
    end if;
    if not exists (select from pg_publication where pubname = 'supabase_realtime') then
      create publication supabase_realtime;
    end if;
  end $$;
`;

/** A database made like a new Supabase project. */
export async function createSupabaseProject(prefix = 'supabase'): Promise<TestDatabase> {
  const database = await createTestDatabase(prefix);
  try {
    await adminQuery(projectSql, [], database.url);
  } catch (error) {
    await database.drop();
    throw error;
  }
  return database;
}

export interface SupabaseApp {
  /** A custom role that the app's grants name (NOLOGIN). */
  appRole: string;
  /** A custom login role, member of appRole, with a setting; owns nothing, so a test can drop it. */
  loginRole: string;
  /** Users whose notes are partly private, for checking RLS. */
  userIds: string[];
  /** Drops the custom roles (after every database that mentions them is gone). */
  dropRoles(): Promise<void>;
}

/** What a user builds in a project: the part a backup must carry. */
export async function addSupabaseApp(url: string, users = 20): Promise<SupabaseApp> {
  const suffix = randomBytes(4).toString('hex');
  const appRole = `app_reader_${suffix}`;
  const loginRole = `app_login_${suffix}`;
  const dropRoles = async () => {
    await adminQuery(`drop role if exists ${loginRole}`);
    await adminQuery(`drop role if exists ${appRole}`);
  };
  try {
    await adminQuery(
      `create role ${appRole} nologin;
       create role ${loginRole} login connection limit 5 in role ${appRole};
       alter role ${loginRole} set statement_timeout = '5s';
       grant ${appRole} to authenticator;

       insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
         select md5('user' || i)::uuid, 'authenticated', 'authenticated', 'user' || i || '@example.com',
                '{"provider": "email"}', jsonb_build_object('name', 'User ' || i), '2024-01-01'::timestamptz + i * interval '1 day', now()
         from generate_series(1, ${users}) i;
       insert into auth.refresh_tokens (token, user_id, revoked, created_at)
         select md5('token' || i), md5('user' || (1 + i % ${users}))::uuid::text, i % 3 = 0, now() from generate_series(1, 30) i;
       -- Migration history of a newer platform version: it must not travel with the data.
       insert into auth.schema_migrations values ('20990101000000');
       insert into storage.migrations (id, name, hash) values (99, 'source-only-migration', '0000000000000000000000000000000000000000');
       insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true), ('documents', 'documents', false);
       insert into storage.objects (bucket_id, name, owner, metadata)
         select case when i % 2 = 0 then 'avatars' else 'documents' end, 'folder/file' || i || '.png', md5('user' || (1 + i % ${users}))::uuid,
                jsonb_build_object('size', i * 100, 'mimetype', 'image/png')
         from generate_series(1, 40) i;

       create schema app_private;
       create table public.profiles (
         id uuid primary key references auth.users (id) on delete cascade,
         username text unique,
         avatar_url text,
         updated_at timestamptz default now()
       );
       create table public.notes (
         id bigint generated by default as identity primary key,
         owner uuid not null default auth.uid() references auth.users (id),
         title text not null,
         body text,
         is_public boolean not null default false,
         created_at timestamptz not null default now()
       );
       create table public.note_events (
         id uuid primary key default extensions.uuid_generate_v4(),
         note_id bigint not null references public.notes (id) on delete cascade,
         kind text not null,
         at timestamptz not null default now()
       );
       -- A trigger that writes rows: a data restore must not fire it again.
       create function app_private.record_note_event() returns trigger language plpgsql security definer set search_path = '' as $fn$
         begin
           insert into public.note_events (note_id, kind) values (new.id, 'created');
           return new;
         end
       $fn$;
       create trigger notes_record_event after insert on public.notes for each row execute function app_private.record_note_event();

       alter table public.profiles enable row level security;
       alter table public.notes enable row level security;
       alter table public.note_events enable row level security;
       create policy "profiles are public" on public.profiles for select to anon, authenticated using (true);
       create policy "users update their profile" on public.profiles for update to authenticated
         using ((select auth.uid()) = id) with check ((select auth.uid()) = id);
       create policy "owners and public notes" on public.notes for select to authenticated
         using ((select auth.uid()) = owner or is_public);
       create policy "owners add notes" on public.notes for insert to authenticated with check ((select auth.uid()) = owner);
       create policy "anyone reads public notes" on public.notes for select to anon using (is_public);
       grant select on public.profiles to anon;
       grant select, insert, update, delete on public.notes to authenticated;
       grant select on public.notes, public.profiles to ${appRole};
       grant usage on schema app_private to ${appRole};
       alter publication supabase_realtime add table public.notes;

       insert into public.profiles (id, username, avatar_url)
         select id, split_part(email, '@', 1), 'https://example.com/' || id || '.png' from auth.users;
       insert into public.notes (owner, title, body, is_public)
         select md5('user' || (1 + i % ${users}))::uuid, 'note ' || i, repeat('text ', i % 20), i % 4 = 0
         from generate_series(1, 200) i;`,
      [],
      url,
    );
  } catch (error) {
    await dropRoles().catch(() => {});
    throw error;
  }
  const userIds = (await adminQuery<{ id: string }>('select id from auth.users order by email limit 3', [], url)).map((row) => row.id);
  return { appRole, loginRole, userIds, dropRoles };
}

/** How many notes a signed-in user sees through RLS, as PostgREST would ask. */
export async function notesVisibleTo(url: string, userId: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('begin');
    await client.query('set local role authenticated');
    await client.query(`select set_config('request.jwt.claims', $1, true)`, [JSON.stringify({ sub: userId, role: 'authenticated' })]);
    const { rows } = await client.query<{ count: string }>('select count(*) as count from public.notes');
    await client.query('rollback');
    return Number(rows[0]!.count);
  } finally {
    await client.end();
  }
}

/** Everything about a database's app layer that a restore must reproduce, in comparable form. */
export async function appSecurity(url: string): Promise<Record<string, unknown>> {
  const query = <T extends pg.QueryResultRow>(sql: string) => adminQuery<T>(sql, [], url);
  return {
    policies: await query(
      `select schemaname, tablename, policyname, permissive, roles::text[] as roles, cmd, qual, with_check
       from pg_policies where schemaname = 'public' order by 1, 2, 3`,
    ),
    rowSecurity: await query(`select relname, relrowsecurity from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r' order by 1`),
    tableGrants: await query(
      `select grantee, table_schema, table_name, privilege_type from information_schema.role_table_grants
       where table_schema in ('public', 'app_private') order by 1, 2, 3, 4`,
    ),
    schemaUsage: await query(
      `select r.rolname, has_schema_privilege(r.oid, 'app_private', 'usage') as usage
       from pg_roles r where r.rolname in ('anon', 'authenticated', 'service_role') or r.rolname like 'app\\_%' order by 1`,
    ),
    triggers: await query(
      `select t.tgname, c.relname as on_table from pg_trigger t join pg_class c on c.oid = t.tgrelid
       where not t.tgisinternal and c.relnamespace = 'public'::regnamespace order by 1`,
    ),
    realtimeTables: await query(`select schemaname, tablename from pg_publication_tables where pubname = 'supabase_realtime' order by 1, 2`),
  };
}
