-- Backstop catalog: targets, runs, run events.
-- Every time is the database's own clock (now()); runners never send timestamps.

create table backstop.targets (
  id uuid primary key default gen_random_uuid(),
  name text not null unique
    check (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  -- Secret: never returned by list/show, never logged, never copied to runs or events.
  database_url text not null,
  store_url text not null,
  options jsonb not null default '{}'::jsonb,
  -- false lets several runs of this target execute at once (opt-out of invariant 5).
  exclusive boolean not null default true,
  max_attempts integer not null default 1 check (max_attempts between 1 and 10),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table backstop.runs (
  id uuid primary key default gen_random_uuid(),
  target_id uuid not null references backstop.targets (id) on delete cascade,
  status text not null default 'queued'
    check (status in ('queued', 'dispatched', 'running', 'cancelling',
                      'succeeded', 'failed', 'cancelled', 'timed_out')),
  trigger text not null default 'manual',
  exclusive boolean not null default true,
  attempt integer not null default 0,
  max_attempts integer not null default 1,
  -- Fencing token: a new one per claim; every runner write is conditional on it.
  lease_id uuid,
  lease_expires_at timestamptz,
  heartbeat_at timestamptz,
  claimed_by text,
  start_deadline_at timestamptz,
  deadline_at timestamptz not null,
  cancel_requested_at timestamptz,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  error_code text,
  error_message text,
  progress jsonb,
  artifact jsonb,
  executor jsonb,
  check ((status in ('running', 'cancelling')) = (lease_id is not null and lease_expires_at is not null)
         or status in ('succeeded', 'failed', 'cancelled', 'timed_out')),
  check ((status in ('succeeded', 'failed', 'cancelled', 'timed_out')) = (finished_at is not null))
);

-- Invariant 5: at most one executing run per exclusive target.
create unique index runs_one_executing_per_target
  on backstop.runs (target_id)
  where exclusive and status in ('dispatched', 'running', 'cancelling');

create index runs_queued on backstop.runs (created_at) where status = 'queued';
create index runs_active_deadlines on backstop.runs (lease_expires_at, deadline_at)
  where status in ('queued', 'dispatched', 'running', 'cancelling');
create index runs_by_target on backstop.runs (target_id, created_at desc);

create table backstop.run_events (
  id bigserial primary key,
  run_id uuid not null references backstop.runs (id) on delete cascade,
  at timestamptz not null default now(),
  attempt integer not null,
  kind text not null,
  status text,
  message text,
  data jsonb
);
create index run_events_by_run on backstop.run_events (run_id, id);
