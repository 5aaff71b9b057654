-- Control plane: schedules, retention, verification policy, notifications, executors, API
-- tokens, per-run runner tokens, schedule slots, verification results, notification outbox.

-- {"cron": "0 3 * * *", "timezone": "Europe/Paris"} or null
alter table backstop.targets add column schedule jsonb;
-- {"keepLast": 7, "daily": 7, "weekly": 4, "monthly": 12} or null (keep everything)
alter table backstop.targets add column retention jsonb;
-- {"everyNth": 5} and/or {"cron": "0 5 * * 0", "timezone": "UTC", "checksums": true} or null
alter table backstop.targets add column verification jsonb;
-- [{"id": "…", "kind": "webhook"|"slack", "url": "…", "secret": "…", "on": ["failed", …]}]
-- url and secret are secrets: write-only through the API.
alter table backstop.targets add column notifications jsonb not null default '[]'::jsonb;
-- {"kind": "github", "owner": "…", "repo": "…", "workflow": "backup.yml", "ref": "main"} or null (workers)
alter table backstop.targets add column executor_config jsonb;

-- Exactly one run per schedule slot, whatever the number of schedulers.
alter table backstop.runs add column schedule_slot timestamptz;
create unique index runs_one_per_schedule_slot on backstop.runs (target_id, schedule_slot) where schedule_slot is not null;

-- Result of the latest verification drill: {"status": "passed"|"failed", "at": "…", "details": …}
alter table backstop.runs add column verification jsonb;
-- Set when retention deleted the artifact's objects; the row is deleted right after.
alter table backstop.runs add column pruned_at timestamptz;

create table backstop.api_tokens (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  role text not null check (role in ('admin', 'operator', 'viewer')),
  -- SHA-256 of the token; the token itself is shown once and never stored.
  token_hash text not null unique,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);

-- A runner token lets a remote runner (a CI job) claim, heartbeat and finalize one run only.
create table backstop.runner_tokens (
  run_id uuid primary key references backstop.runs (id) on delete cascade,
  token_hash text not null unique,
  created_at timestamptz not null default now()
);

-- Outbox: a notification is recorded with the transition and delivered later with retries,
-- so a dead webhook never delays a run.
create table backstop.notifications (
  id bigserial primary key,
  run_id uuid references backstop.runs (id) on delete set null,
  target_id uuid references backstop.targets (id) on delete cascade,
  channel_id text not null,
  event text not null,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  delivered_at timestamptz,
  failed_at timestamptz,
  last_error text
);
create index notifications_due on backstop.notifications (next_attempt_at) where delivered_at is null and failed_at is null;
