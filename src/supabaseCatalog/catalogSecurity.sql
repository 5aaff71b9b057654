-- Backstop's catalog in a Supabase project: organisations, row-level security, privileges.
--
-- Who may do what (test/supabaseRls.test.ts checks every cell):
--   anon                          nothing: no privilege on schema backstop at all
--   authenticated                 SELECT only, and only rows of organisations where the user is an
--                                 admin (targets, their runs and run events); their own
--                                 memberships; and only the columns granted below: never what
--                                 only Backstop's own side may read (database URLs, notification
--                                 channels, store URLs and artifact locations, lease ids, runner
--                                 identity, executor details, free-text messages that name them)
--   service_role (BYPASSRLS)      everything, but the audit trail: read only
--   backstop_service (NOLOGIN)    everything, through policies; Backstop's own login role is a
--                                 member of it (postgres is made one below); the audit trail:
--                                 read and append only
--   every role                    no UPDATE, DELETE or TRUNCATE of the audit trail (a trigger)
--
-- Idempotent: safe to apply again after Backstop's own migrator created the catalog.

do $roles$ begin
  create role backstop_service nologin;
exception when duplicate_object or unique_violation then null;
end $roles$;

-- On Supabase the migration runs as postgres, which Backstop usually connects as too. A
-- dedicated login role instead: `create role backstop_login login password '…' in role backstop_service;`
do $grant$ begin
  if exists (select from pg_roles where rolname = 'postgres') then
    grant backstop_service to postgres;
  end if;
end $grant$;

create table if not exists backstop.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  created_at timestamptz not null default now()
);

create table if not exists backstop.organization_members (
  organization_id uuid not null references backstop.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('admin', 'member')),
  created_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);
create index if not exists organization_members_by_user on backstop.organization_members (user_id);

-- Runs and run events reach their organisation through their target. A target without an
-- organisation is visible to no signed-in user. Deleting an organisation that still has
-- targets is refused rather than cascading to its backups' history.
alter table backstop.targets add column if not exists organization_id uuid references backstop.organizations (id);
create index if not exists targets_by_organization on backstop.targets (organization_id);

-- Backstop's role owns its catalog, so that Backstop (a member of it) can apply its own later
-- catalog migrations. Its migrator begins with `create schema if not exists backstop`, which
-- PostgreSQL checks against the database's CREATE privilege even when the schema exists.
alter schema backstop owner to backstop_service;
do $owner$
declare
  item record;
begin
  execute format('grant create on database %I to backstop_service', current_database());
  for item in select c.oid::regclass as relation from pg_class c
              where c.relnamespace = 'backstop'::regnamespace and c.relkind in ('r', 'p') loop
    execute format('alter table %s owner to backstop_service', item.relation);
  end loop;
  for item in select p.oid::regprocedure as routine from pg_proc p where p.pronamespace = 'backstop'::regnamespace loop
    execute format('alter function %s owner to backstop_service', item.routine);
  end loop;
end $owner$;

-- Helpers for policies: SECURITY DEFINER, in a schema the Data API does not expose (only the
-- schemas listed in the API settings are; never add this one), with an empty search_path and
-- fully qualified names. They must read organization_members without its own policies, which
-- call them: owned by the owner of organization_members, on which RLS is therefore not FORCEd.
--
-- They take no user id: each answers for the user of the request only. A helper that took the
-- user as an argument answered for anyone (`is_org_admin(org, someone_else)` told any
-- signed-in user who administers what). The request's user is read from the JWT claims
-- PostgREST sets for the transaction, the same settings auth.uid() reads; read here directly
-- because the helpers run as their owner, which holds no privilege on schema auth.
create schema if not exists backstop_private;
alter schema backstop_private owner to backstop_service;

-- Policies name the helpers: drop them before the helpers they call (applying this again, or
-- over a catalog whose helpers still took a uid).
drop policy if exists org_admins_read on backstop.targets;
drop policy if exists org_admins_read on backstop.runs;
drop policy if exists org_admins_read on backstop.run_events;
drop policy if exists members_read on backstop.organizations;
drop policy if exists own_or_admin_read on backstop.organization_members;
drop function if exists backstop_private.is_org_admin(uuid, uuid);
drop function if exists backstop_private.is_org_member(uuid, uuid);

create or replace function backstop_private.request_user_id() returns uuid
language sql stable set search_path = '' as $fn$
  select coalesce(
    nullif(pg_catalog.current_setting('request.jwt.claim.sub', true), ''),
    (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$fn$;

create or replace function backstop_private.is_org_admin(org uuid) returns boolean
language sql stable security definer set search_path = '' as $fn$
  select exists (
    select 1 from backstop.organization_members m
    where m.organization_id = org and m.user_id = (select backstop_private.request_user_id()) and m.role = 'admin')
$fn$;

create or replace function backstop_private.is_org_member(org uuid) returns boolean
language sql stable security definer set search_path = '' as $fn$
  select exists (
    select 1 from backstop.organization_members m
    where m.organization_id = org and m.user_id = (select backstop_private.request_user_id()))
$fn$;

alter function backstop_private.request_user_id() owner to backstop_service;
alter function backstop_private.is_org_admin(uuid) owner to backstop_service;
alter function backstop_private.is_org_member(uuid) owner to backstop_service;

-- Privileges. Supabase's default privileges grant everything in schema public to anon and
-- authenticated; the catalog is not in public, but nothing here relies on that: every
-- privilege is revoked explicitly, then granted back only where a policy decides.
revoke all on schema backstop, backstop_private from public, anon, authenticated;
revoke all on all tables in schema backstop from public, anon, authenticated;
revoke all on all sequences in schema backstop from public, anon, authenticated;
revoke all on all functions in schema backstop, backstop_private from public, anon, authenticated;
-- Tables, sequences and functions that Backstop's later catalog migrations create stay closed
-- to the API roles too (functions are executable by PUBLIC unless revoked).
alter default privileges for role backstop_service in schema backstop revoke all on tables from public, anon, authenticated;
alter default privileges for role backstop_service in schema backstop revoke all on sequences from public, anon, authenticated;
alter default privileges for role backstop_service in schema backstop revoke all on functions from public, anon, authenticated;
alter default privileges for role backstop_service in schema backstop grant all on tables to service_role;
alter default privileges for role backstop_service in schema backstop grant all on sequences to service_role;
alter default privileges for role backstop_service in schema backstop grant execute on functions to service_role;

grant usage on schema backstop to service_role, authenticated;
grant all on all tables in schema backstop to service_role;
grant all on all sequences in schema backstop to service_role;
grant execute on all functions in schema backstop to service_role;

-- Column lists, not `grant select on backstop.targets`: what is not listed stays unreadable,
-- and a column a later catalog migration adds is not readable until it is granted here.
-- Only Backstop's own side (backstop_service, service_role) reads:
--   targets.database_url, targets.notifications   credentials, channel URLs and signing secrets
--   targets.store_url, targets.options             where the backups are (a store URL may name an
--                                                  endpoint and bucket); options is free-form
--   runs.artifact                                  store URL, prefix and files of the backup
--   runs.lease_id                                  the fencing token: a runner's writes carry it
--   runs.claimed_by, runs.executor                 who ran it (worker host, GitHub run)
--   runs.error_message, runs.verification,         free text written for operators: it names
--   run_events.message, run_events.data            runners, hosts, object keys and upload ids
-- A signed-in admin reads status, codes, times and policies.
grant select (id, name, exclusive, max_attempts, created_at, updated_at, schedule, retention, verification,
              executor_config, schedule_since, schedule_last_slot, verification_since, verification_last_slot,
              verification_nth_at, paused, organization_id)
  on backstop.targets to authenticated;
grant select (id, target_id, kind, subject_run_id, status, trigger, exclusive, attempt, max_attempts,
              lease_expires_at, heartbeat_at, start_deadline_at, deadline_at, cancel_requested_at,
              created_at, started_at, finished_at, error_code, progress, schedule_slot, pruned_at)
  on backstop.runs to authenticated;
grant select (id, run_id, at, attempt, kind, status) on backstop.run_events to authenticated;
grant select on backstop.organizations, backstop.organization_members to authenticated;

-- Runs are created and claimed only through the catalog's run functions (migration 011); the
-- edge function creates its runs with them as backstop_service. Not to the API roles: a
-- signed-in user starts a backup through the edge function, which checks who may.
grant execute on function backstop.create_run(uuid, text, double precision, text, uuid, text, text, jsonb, timestamptz, text[], text, double precision),
                          backstop.claim_run(uuid, double precision, text, text[], text[]),
                          backstop.record_imported_run(uuid, uuid, integer, timestamptz, double precision, jsonb, text)
  to backstop_service;

-- The policies call the helpers as the querying user; anon and PUBLIC may not (revoked above).
grant usage on schema backstop_private to authenticated, service_role;
grant execute on function backstop_private.is_org_admin(uuid), backstop_private.is_org_member(uuid)
  to authenticated, service_role;

-- Row-level security on every table of the catalog. FORCE makes the policies bind the owner
-- (backstop_service) too, except on organization_members, which the helpers above read as its
-- owner (see there).
do $rls$
declare
  item record;
begin
  for item in select c.oid::regclass as relation, c.relname from pg_class c
              where c.relnamespace = 'backstop'::regnamespace and c.relkind in ('r', 'p') loop
    execute format('alter table %s enable row level security', item.relation);
    if item.relname <> 'organization_members' then
      execute format('alter table %s force row level security', item.relation);
    end if;
    execute format('drop policy if exists backstop_service_all on %s', item.relation);
    if item.relname <> 'audit_log' then
      execute format('create policy backstop_service_all on %s for all to backstop_service using (true) with check (true)', item.relation);
    end if;
  end loop;
end $rls$;

-- The audit trail is append-only for every role. Backstop's own role reads it and appends to
-- it, and nothing else: no UPDATE or DELETE policy (so under RLS they match no row), no such
-- privilege, and migration 019's trigger refuses UPDATE, DELETE and TRUNCATE whoever runs
-- them: backstop_service (its owner), service_role (BYPASSRLS), postgres. service_role reads it
-- and appends nothing: entries come from Backstop, the one path that knows who acted. anon and
-- authenticated hold no privilege on it at all (revoked above, never granted).
drop policy if exists backstop_service_read on backstop.audit_log;
drop policy if exists backstop_service_append on backstop.audit_log;
create policy backstop_service_read on backstop.audit_log for select to backstop_service using (true);
create policy backstop_service_append on backstop.audit_log for insert to backstop_service with check (true);
revoke insert, update, delete, truncate on backstop.audit_log from service_role;
revoke update, delete, truncate on backstop.audit_log from backstop_service;

create policy org_admins_read on backstop.targets for select to authenticated
  using (backstop_private.is_org_admin(organization_id));

create policy org_admins_read on backstop.runs for select to authenticated
  using (exists (
    select 1 from backstop.targets t
    where t.id = runs.target_id and backstop_private.is_org_admin(t.organization_id)));

create policy org_admins_read on backstop.run_events for select to authenticated
  using (exists (
    select 1 from backstop.runs r join backstop.targets t on t.id = r.target_id
    where r.id = run_events.run_id and backstop_private.is_org_admin(t.organization_id)));

create policy members_read on backstop.organizations for select to authenticated
  using (backstop_private.is_org_member(id));

create policy own_or_admin_read on backstop.organization_members for select to authenticated
  using (user_id = (select auth.uid()) or backstop_private.is_org_admin(organization_id));
