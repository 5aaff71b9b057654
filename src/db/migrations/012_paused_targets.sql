-- A target's schedule can be paused: while `paused`, the scheduler queues none of its scheduled
-- backups and none of its scheduled drills (manual runs still work).
alter table backstop.targets add column paused boolean not null default false;

-- Resuming settles everything that came due while the target was paused: its backup slots,
-- its drill slots, and the successful backups counted towards an every-Nth drill. A resume
-- therefore never queues a catch-up burst (nor the single catch-up run a downtime gets): the
-- first scheduled run is the first slot after the resume. Done here, in the same row update
-- that resumes, so every path that resumes (CLI, API, SQL) settles alike and no scheduler can
-- see the target resumed but unsettled.
create function backstop.settle_slots_on_resume() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if old.paused and not new.paused then
    new.schedule_last_slot := greatest(new.schedule_last_slot, now());
    new.verification_last_slot := greatest(new.verification_last_slot, now());
    new.verification_nth_at := greatest(new.verification_nth_at, now());
  end if;
  return new;
end
$$;

create trigger targets_settle_slots_on_resume
  before update of paused on backstop.targets
  for each row execute function backstop.settle_slots_on_resume();
