-- Live progress of the restores of a backup. A restore is no run of its own (its start and end
-- are events of the backup's run), so its progress cannot ride on the run's row, which is
-- terminal and final: each restore under way keeps one row here, written about every second
-- by whatever restores (the server, `backstop restore`) and deleted when it ends. A process
-- that dies mid-restore leaves its row behind: readers ignore rows not written for a while,
-- and the next restore to start removes old ones.
create table backstop.restore_progress (
  id uuid primary key default gen_random_uuid(),
  run_id uuid not null references backstop.runs (id) on delete cascade,
  progress jsonb not null,
  started_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index restore_progress_by_run on backstop.restore_progress (run_id, updated_at desc);
