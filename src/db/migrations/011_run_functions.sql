-- Run creation and claiming, defined once. Every client that makes or claims runs (Backstop's
-- own catalog code, the scheduler, import, the Supabase edge function) calls these functions instead of
-- writing its own INSERT or UPDATE, so a new run is the same whoever asks for it.
--
-- Values that are configuration (deadlines, lease lengths) or that the state machine in
-- src/core/runState.ts owns (status sets) are parameters, never constants here: the callers
-- pass them, as they did when they held the SQL. Times are the database clock's.
--
-- SECURITY INVOKER: the caller's own privileges and row-level security apply, so calling a
-- function grants nothing the caller could not do with the statements inside it.

-- Creates a run of a target with its `created` event, in one statement, and wakes workers
-- (LISTEN backstop_runs). Returns no row when the target does not exist, or when the schedule
-- slot is already taken (schedule_slot given). Parameters:
--   p_run_deadline_ms     hard deadline from now (BACKSTOP_RUN_DEADLINE)
--   p_kind                'backup' or 'verify'; drills never count for the one-run-per-target
--                         rule (they do not touch the source), so only backups are exclusive
--   p_subject_run_id      for a drill: the backup it verifies
--   p_requested_by        who asked, when the trigger is on someone's behalf (the edge
--                         function's signed-in user): named in the created event
--   p_message             the created event's message instead of the default, "queued by
--                         <trigger>[ for user <requested_by>]" ("verification queued by …"
--                         for a drill)
--   p_data                the created event's data
--   p_schedule_slot       the schedule slot a scheduled run settles (unique per target)
--   p_refuse_if_active    statuses of an exclusive target's runs that refuse a new one:
--                         raises unique_violation (23505), the same error a racing insert gets
--                         from runs_one_executing_per_target, so callers map one code to
--                         "a run is already active"; null refuses nothing
--   p_dispatcher          non-null: the run is created already handed to GitHub Actions by
--                         this dispatcher (status dispatched, executor state dispatching, a
--                         start deadline, and a `dispatching` event), as claim-for-dispatch
--                         would make it
--   p_start_deadline_ms   with p_dispatcher: it must be claimed within this (never past the
--                         hard deadline)
create function backstop.create_run(
  p_target_id uuid,
  p_trigger text,
  p_run_deadline_ms double precision,
  p_kind text default 'backup',
  p_subject_run_id uuid default null,
  p_requested_by text default null,
  p_message text default null,
  p_data jsonb default null,
  p_schedule_slot timestamptz default null,
  p_refuse_if_active text[] default null,
  p_dispatcher text default null,
  p_start_deadline_ms double precision default null
) returns setof backstop.runs
language plpgsql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
  target record;
  run backstop.runs;
begin
  select t.id, t.exclusive, t.max_attempts into target from backstop.targets t where t.id = p_target_id;
  if not found then
    return;
  end if;
  -- One active run per exclusive target, queued runs included (the partial unique index covers
  -- executing runs only, and refuses a racing insert with the same code).
  if p_refuse_if_active is not null and target.exclusive and p_kind = 'backup' and exists (
    select 1 from backstop.runs r where r.target_id = target.id and r.exclusive and r.status = any(p_refuse_if_active)
  ) then
    raise exception 'target % already has an active run', target.id using errcode = 'unique_violation';
  end if;
  insert into backstop.runs (target_id, trigger, exclusive, max_attempts, deadline_at, kind, subject_run_id,
                             schedule_slot, status, start_deadline_at, executor)
  values (target.id, p_trigger, target.exclusive and p_kind = 'backup', target.max_attempts,
          now() + p_run_deadline_ms * interval '1 millisecond', p_kind, p_subject_run_id, p_schedule_slot,
          case when p_dispatcher is not null then 'dispatched' else 'queued' end,
          case when p_dispatcher is not null then now() + least(p_run_deadline_ms, p_start_deadline_ms) * interval '1 millisecond' end,
          case when p_dispatcher is not null then jsonb_build_object('kind', 'github', 'state', 'dispatching', 'dispatcher', p_dispatcher) end)
  on conflict (target_id, schedule_slot) where schedule_slot is not null do nothing
  returning * into run;
  if run.id is null then
    return;
  end if;
  insert into backstop.run_events (run_id, attempt, kind, status, message, data)
  values (run.id, 0, 'created', 'queued',
          coalesce(p_message, case when p_kind = 'verify' then 'verification queued by ' else 'queued by ' end || p_trigger
                              || coalesce(' for user ' || p_requested_by, '')),
          p_data);
  if run.status = 'dispatched' then
    insert into backstop.run_events (run_id, attempt, kind, status, message)
    values (run.id, 0, 'dispatching', 'dispatched', 'handing the run to GitHub Actions');
  end if;
  perform pg_notify('backstop_runs', run.id::text);
  return next run;
end
$$;

-- Claims a run for a runner: a new attempt, a new lease (fencing token) of p_lease_ttl_ms, and
-- a `claimed` event, in one statement. With p_run_id, that run if it is in p_from_statuses,
-- not cancelled and within its deadlines; without, the oldest queued run a worker may take:
-- within its deadlines, not cancelled, its target executing nothing exclusive (p_exclusive_statuses),
-- and not a backup of a target with an external executor (those are dispatched, not claimed;
-- drills always run on workers). Returns no row when nothing is claimable. Two claims racing
-- for two runs of one target both pass the check; runs_one_executing_per_target then refuses
-- the second with unique_violation (23505), which the caller handles.
create function backstop.claim_run(
  p_run_id uuid,
  p_lease_ttl_ms double precision,
  p_claimed_by text,
  p_from_statuses text[],
  p_exclusive_statuses text[]
) returns setof backstop.runs
language plpgsql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
  candidate uuid;
  run backstop.runs;
begin
  if p_run_id is null then
    select q.id into candidate from backstop.runs q
    where q.status = 'queued' and q.cancel_requested_at is null and q.deadline_at > now()
      and (q.start_deadline_at is null or q.start_deadline_at > now())
      and (not q.exclusive or not exists (
        select 1 from backstop.runs x
        where x.target_id = q.target_id and x.exclusive and x.status = any(p_exclusive_statuses)))
      and (q.kind = 'verify' or not exists (
        select 1 from backstop.targets e where e.id = q.target_id and e.executor_config is not null))
    order by q.created_at
    for update skip locked
    limit 1;
    if candidate is null then
      return;
    end if;
  end if;
  update backstop.runs r set status = 'running', attempt = r.attempt + 1, lease_id = gen_random_uuid(),
    lease_expires_at = now() + p_lease_ttl_ms * interval '1 millisecond', heartbeat_at = now(), claimed_by = p_claimed_by,
    started_at = coalesce(r.started_at, now())
  where r.id = coalesce(candidate, p_run_id)
    and (candidate is not null or (r.status = any(p_from_statuses) and r.cancel_requested_at is null
         and r.deadline_at > now() and (r.start_deadline_at is null or r.start_deadline_at > now())))
  returning r.* into run;
  if run.id is null then
    return;
  end if;
  insert into backstop.run_events (run_id, attempt, kind, status, message)
  values (run.id, run.attempt, 'claimed', 'running', 'claimed by ' || run.claimed_by);
  return next run;
end
$$;

-- Records a backup found in a store (backstop import) as the succeeded run it was: its own id,
-- attempt and times from its manifest, its artifact, and an `imported` event. Never exclusive
-- and never executed. Returns no row when the target does not exist or the run is already in
-- the catalog (its id is taken).
create function backstop.record_imported_run(
  p_run_id uuid,
  p_target_id uuid,
  p_attempt integer,
  p_created_at timestamptz,
  p_total_ms double precision,
  p_artifact jsonb,
  p_message text
) returns setof backstop.runs
language plpgsql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
  run backstop.runs;
begin
  insert into backstop.runs (id, target_id, kind, status, trigger, attempt, max_attempts, exclusive,
                             deadline_at, created_at, started_at, finished_at, artifact)
  select p_run_id, t.id, 'backup', 'succeeded', 'import', p_attempt, p_attempt, false,
         p_created_at, p_created_at, p_created_at, p_created_at + p_total_ms * interval '1 millisecond', p_artifact
  from backstop.targets t where t.id = p_target_id
  on conflict (id) do nothing
  returning * into run;
  if run.id is null then
    return;
  end if;
  insert into backstop.run_events (run_id, attempt, kind, status, message)
  values (run.id, run.attempt, 'imported', 'succeeded', p_message);
  return next run;
end
$$;

-- Functions are executable by PUBLIC unless revoked. These write runs: only their owner
-- (Backstop's role, which applies its migrations) and, on Supabase, backstop_service run them.
revoke execute on function backstop.create_run(uuid, text, double precision, text, uuid, text, text, jsonb, timestamptz, text[], text, double precision) from public;
revoke execute on function backstop.claim_run(uuid, double precision, text, text[], text[]) from public;
revoke execute on function backstop.record_imported_run(uuid, uuid, integer, timestamptz, double precision, jsonb, text) from public;
do $grant$ begin
  if exists (select from pg_roles where rolname = 'backstop_service') then
    grant execute on function backstop.create_run(uuid, text, double precision, text, uuid, text, text, jsonb, timestamptz, text[], text, double precision) to backstop_service;
    grant execute on function backstop.claim_run(uuid, double precision, text, text[], text[]) to backstop_service;
    grant execute on function backstop.record_imported_run(uuid, uuid, integer, timestamptz, double precision, jsonb, text) to backstop_service;
  end if;
end $grant$;
