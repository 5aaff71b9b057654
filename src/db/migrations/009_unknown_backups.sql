-- Complete backups found in a target's store folder that no catalog row vouches for (no row,
-- or a row that is not a succeeded run naming that folder). Garbage collection never deletes
-- them: each prune pass records what it found here, per target, so that the metrics, the API
-- and the dashboard show them to a person, who imports them or deletes them explicitly
-- (`backstop prune --delete-unknown`). Rows go with their target; a recreated target's first
-- pass finds the same folders again.
create table backstop.unknown_backups (
  target_id uuid not null references backstop.targets (id) on delete cascade,
  prefix text not null,
  run_id uuid not null,
  attempt integer not null,
  reason text not null,
  detail text not null,
  objects integer not null,
  newest_at timestamptz not null,
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  primary key (target_id, prefix)
);
