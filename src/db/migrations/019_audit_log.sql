-- The audit trail: who did what, when, from where, and how it ended. One row per action of a
-- person or a token (sign-in, target created/changed/deleted, run triggered, cancelled,
-- restored, drill queued, token created/revoked, channel changed, prune), written by
-- src/operations/ whichever entry point asked.
--
-- Append-only for every role, the table's owner and superusers included: a trigger refuses
-- UPDATE, DELETE and TRUNCATE whoever runs them (triggers bind the owner, superusers and
-- BYPASSRLS roles alike), and the privileges are revoked as well. What it cannot stop is a
-- role allowed to change the schema (the owner, a superuser) dropping the trigger first: that
-- is DDL, not an update, and a catalog's owner can always drop its tables.
--
-- `details` holds facts that are never secret: the names of the fields a change touched
-- (never their values), a restore's host, port and database (never its password), the id of
-- the run an action made.
create table backstop.audit_log (
  id bigint generated always as identity primary key,
  -- The database's clock, like every other time the catalog judges by.
  at timestamptz not null default clock_timestamp(),
  actor_kind text not null check (actor_kind in ('user', 'token', 'cli', 'system')),
  -- A user's or token's id; null for the CLI and the system.
  actor_id text,
  -- A user's or token's name, the OS user at the CLI, the loop for the system (scheduler).
  actor_name text not null,
  actor_role text,
  -- Where from: the client's IP address for the API, the host name for the CLI.
  actor_address text,
  -- Through what: cli, api, dashboard, scheduler.
  client text not null,
  action text not null,
  -- What it acted on: a target name, a run id, a token id, a channel name.
  subject text,
  outcome text not null check (outcome in ('succeeded', 'refused', 'failed')),
  error_code text,
  details jsonb not null default '{}'::jsonb,
  check ((outcome = 'succeeded') = (error_code is null))
);
create index audit_log_by_time on backstop.audit_log (at desc, id desc);
create index audit_log_by_action on backstop.audit_log (action, id desc);

create function backstop.refuse_audit_change() returns trigger
language plpgsql as $fn$
begin
  raise exception 'the audit log is append-only: % on backstop.audit_log is refused', tg_op
    using errcode = 'insufficient_privilege',
          hint = 'Entries are never changed or deleted; see docs/DESIGN.md, "Audit trail".';
end
$fn$;

create trigger audit_log_refuse_update_delete
  before update or delete on backstop.audit_log
  for each row execute function backstop.refuse_audit_change();
-- TRUNCATE fires no row trigger: it needs a statement trigger of its own.
create trigger audit_log_refuse_truncate
  before truncate on backstop.audit_log
  for each statement execute function backstop.refuse_audit_change();

revoke update, delete, truncate on backstop.audit_log from public;
-- The owner too: its privileges are checked like anyone's (the trigger is what also stops a
-- superuser, who skips privilege checks).
do $revoke$ begin
  execute format('revoke update, delete, truncate on backstop.audit_log from %I', current_user);
end $revoke$;
revoke execute on function backstop.refuse_audit_change() from public;

-- On Supabase, the API's service role is granted every table of the schema by default
-- privileges: it reads the trail but appends nothing (entries come from Backstop, which knows
-- who acted). The Supabase migration's row-level security says the same (catalogSecurity.sql).
do $supabase$ begin
  if exists (select from pg_roles where rolname = 'service_role') then
    revoke insert, update, delete, truncate on backstop.audit_log from service_role;
  end if;
end $supabase$;
