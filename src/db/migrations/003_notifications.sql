-- Schedule bookkeeping, and the notification outbox filled by triggers.

-- Slots at or before greatest(schedule_since, schedule_last_slot) are settled. schedule_since
-- is when the schedule was last set (so enabling a schedule does not create a run for a slot
-- that passed before it existed); schedule_last_slot survives retention deleting the run rows
-- that carried the slots (runs.schedule_slot alone would then forget them and recreate them).
alter table backstop.targets add column schedule_since timestamptz;
alter table backstop.targets add column schedule_last_slot timestamptz;
-- The same for verification drills on a cron ({"cron": …} in targets.verification), and for
-- drills every Nth backup ({"everyNth": N}): verification_nth_at is when the backup last
-- drilled that way finished; successes after it count towards the next drill.
alter table backstop.targets add column verification_since timestamptz;
alter table backstop.targets add column verification_last_slot timestamptz;
alter table backstop.targets add column verification_nth_at timestamptz;

update backstop.targets set schedule_since = now() where schedule is not null;
update backstop.targets set verification_since = now() where verification is not null;

create function backstop.track_policy_changes() returns trigger
language plpgsql as $$
begin
  if tg_op = 'INSERT' or new.schedule is distinct from old.schedule then
    new.schedule_since := case when new.schedule is null then null else now() end;
  end if;
  if tg_op = 'INSERT' or new.verification is distinct from old.verification then
    new.verification_since := case when new.verification is null then null else now() end;
  end if;
  return new;
end
$$;

create trigger targets_track_policy_changes
  before insert or update of schedule, verification on backstop.targets
  for each row execute function backstop.track_policy_changes();

create function backstop.iso_utc(at timestamptz) returns text
language sql immutable as $$
  select to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- Enqueues one outbox row per interested channel of the run's target, in the transaction
-- that ends the run. Every path that ends a run (runner finalize, reaper, cancel) goes
-- through an UPDATE of status, so this sees them all. Channel URLs and secrets stay in
-- targets.notifications; the payload never holds them.
--
-- A verification drill is a run too (runs.kind = 'verify', migration 005): its failure or
-- timeout is the `verify_failed` event, and drills never count for `recovered`. The kind is
-- read through to_jsonb(row) because this function predates the column.
--
-- Hazard: this runs inside the run's own transition. Nothing in it may make that transition
-- fail (a malformed channel list, say), so every error is caught and turned into a warning:
-- a lost notification is bad, a run that cannot end is worse.
create function backstop.enqueue_run_notifications() returns trigger
language plpgsql as $$
declare
  target_row record;
  channel jsonb;
  wanted jsonb;
  event text;
  previous_status text;
  payload jsonb;
  run_kind text := coalesce(to_jsonb(new)->>'kind', 'backup');
begin
  begin
    select t.id, t.name, t.notifications into target_row from backstop.targets t where t.id = new.target_id;
    if target_row.notifications is null or jsonb_typeof(target_row.notifications) <> 'array'
       or jsonb_array_length(target_row.notifications) = 0 then
      return null;
    end if;
    if run_kind = 'backup' and new.status = 'succeeded' then
      -- Recovery: the previous meaningful outcome of this target's backups (cancellations
      -- and drills do not count).
      select r.status into previous_status from backstop.runs r
      where r.target_id = new.target_id and r.id <> new.id and r.status in ('succeeded', 'failed', 'timed_out')
        and coalesce(to_jsonb(r)->>'kind', 'backup') = 'backup'
      order by r.finished_at desc nulls last, r.created_at desc
      limit 1;
    end if;
    payload := jsonb_build_object(
      'target', jsonb_build_object('id', target_row.id, 'name', target_row.name),
      'run', jsonb_build_object(
        'id', new.id,
        'kind', run_kind,
        'subjectRunId', to_jsonb(new)->'subject_run_id',
        'status', new.status,
        'trigger', new.trigger,
        'attempt', new.attempt,
        'scheduleSlot', backstop.iso_utc(new.schedule_slot),
        'createdAt', backstop.iso_utc(new.created_at),
        'startedAt', backstop.iso_utc(new.started_at),
        'finishedAt', backstop.iso_utc(new.finished_at),
        'error', case when new.error_code is null then null
                      else jsonb_build_object('code', new.error_code, 'message', new.error_message) end,
        'artifact', case when new.artifact is null then null else jsonb_build_object(
          'storeUrl', new.artifact->'storeUrl',
          'prefix', new.artifact->'prefix',
          'files', jsonb_array_length(coalesce(new.artifact->'files', '[]'::jsonb)),
          'bytes', (select coalesce(sum((f->>'size')::bigint), 0) from jsonb_array_elements(coalesce(new.artifact->'files', '[]'::jsonb)) f)) end),
      'previousStatus', previous_status,
      'at', backstop.iso_utc(now()));
    for channel in select value from jsonb_array_elements(target_row.notifications) loop
      wanted := coalesce(channel->'on', '["failed", "timed_out", "recovered"]'::jsonb);
      event := null;
      if run_kind <> 'backup' then
        if new.status in ('failed', 'timed_out') and wanted ? 'verify_failed' then event := 'verify_failed'; end if;
      elsif new.status = 'succeeded' then
        if previous_status in ('failed', 'timed_out') and wanted ? 'recovered' then
          event := 'recovered';
        elsif wanted ? 'succeeded' then
          event := 'succeeded';
        end if;
      elsif wanted ? new.status then
        event := new.status;
      end if;
      if event is not null and channel->>'id' is not null then
        insert into backstop.notifications (run_id, target_id, channel_id, event, payload)
        values (new.id, new.target_id, channel->>'id', event, payload || jsonb_build_object('event', event));
      end if;
    end loop;
  exception when others then
    raise warning 'backstop: notifications for run % were not enqueued: % (%)', new.id, sqlerrm, sqlstate;
  end;
  return null;
end
$$;

create trigger runs_notify_on_terminal_status
  after update of status on backstop.runs
  for each row
  when (old.status is distinct from new.status and new.status in ('succeeded', 'failed', 'cancelled', 'timed_out'))
  execute function backstop.enqueue_run_notifications();

-- Foreign key of notifications.run_id (on delete set null): deleting pruned runs needs it.
create index notifications_by_run on backstop.notifications (run_id);
