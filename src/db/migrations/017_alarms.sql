-- Alarms: conditions about what did not happen (no good backup within a bound, a schedule slot
-- without a run, a drill overdue or failing, a store that cannot be written), and a per-target
-- heartbeat URL pinged at the start and end of every backup.

-- An explicit bound on the age of the newest good backup (null: derived from the schedule).
alter table backstop.targets add column max_backup_age_seconds integer
  check (max_backup_age_seconds is null or max_backup_age_seconds > 0);
-- Healthchecks-style ping URL: a secret (whoever knows it can report success), never returned.
alter table backstop.targets add column ping_url text;
-- Slots the scheduler settled without a run (downtime catch-up, or a scheduled run still waiting):
-- how many since the alarm last recovered, the settled instant they came after, and when the
-- last one was counted (a good backup that finished after it recovers the alarm).
alter table backstop.targets add column schedule_missed_slots integer not null default 0;
alter table backstop.targets add column schedule_missed_after timestamptz;
alter table backstop.targets add column schedule_missed_at timestamptz;

-- One row per alarm raised; active while cleared_at is null. The partial unique index is what
-- keeps several servers and workers from raising the same alarm twice: the evaluator inserts
-- with ON CONFLICT DO NOTHING (and evaluates under an advisory lock besides).
create table backstop.alarms (
  id bigserial primary key,
  target_id uuid not null references backstop.targets (id) on delete cascade,
  kind text not null,
  -- When the condition began (e.g. the newest good backup's time plus its bound).
  since timestamptz not null,
  -- What, what to do: the words every channel renders.
  details jsonb not null,
  raised_at timestamptz not null default now(),
  last_sent_at timestamptz not null default now(),
  sent_count integer not null default 1,
  cleared_at timestamptz
);
create unique index alarms_one_active on backstop.alarms (target_id, kind) where cleared_at is null;
create index alarms_by_target on backstop.alarms (target_id, raised_at desc);

-- Every evaluation reads each target's newest finished backup and drill, and its newest good ones.
create index runs_finished_by_target on backstop.runs (target_id, kind, status, finished_at desc) where finished_at is not null;

-- Heartbeat pings ride the outbox (retried, through the outbound guard) under the reserved
-- channel id '@ping', which no notification channel may take (ids are [A-Za-z0-9_-]).
create function backstop.enqueue_run_ping() returns trigger
language plpgsql as $$
declare
  url text;
  event text;
begin
  begin
    if new.kind <> 'backup' then return null; end if;
    select t.ping_url into url from backstop.targets t where t.id = new.target_id;
    if url is null then return null; end if;
    event := case when new.status = 'running' then 'ping_start'
                  when new.status = 'succeeded' then 'ping_success'
                  else 'ping_fail' end;
    insert into backstop.notifications (run_id, target_id, channel_id, event, payload)
    values (new.id, new.target_id, '@ping', event, jsonb_build_object(
      'event', event, 'runId', new.id, 'status', new.status,
      'error', case when new.error_code is null then null else jsonb_build_object('code', new.error_code, 'message', new.error_message) end));
  exception when others then
    -- Inside the run's own transition: a lost ping is bad, a run that cannot end is worse.
    raise warning 'backstop: ping for run % was not enqueued: % (%)', new.id, sqlerrm, sqlstate;
  end;
  return null;
end
$$;

create trigger runs_ping_on_status
  after update of status on backstop.runs
  for each row
  -- A start when a runner claims it; an end when it ends, unless it was cancelled before it started.
  when (old.status is distinct from new.status and (
        (new.status = 'running' and old.status in ('queued', 'dispatched'))
        or new.status in ('succeeded', 'failed', 'timed_out')
        or (new.status = 'cancelled' and old.status in ('running', 'cancelling'))))
  execute function backstop.enqueue_run_ping();

-- Hands an alarm (or its recovery) to the outbox: one row per channel of the target that listens
-- to `alarm`. The one place that decides who hears an alarm, so channel kinds added later only
-- change this function.
create function backstop.enqueue_alarm_notification(p_target_id uuid, p_event text, p_payload jsonb) returns integer
language plpgsql as $$
declare
  inserted integer;
begin
  insert into backstop.notifications (run_id, target_id, channel_id, event, payload)
  select null, t.id, ch.value->>'id', p_event, p_payload || jsonb_build_object('event', p_event)
  from backstop.targets t
  cross join lateral jsonb_array_elements(case when jsonb_typeof(t.notifications) = 'array' then t.notifications else '[]'::jsonb end) ch
  where t.id = p_target_id and ch.value->>'id' is not null and coalesce(ch.value->'on', '[]'::jsonb) ? 'alarm';
  get diagnostics inserted = row_count;
  return inserted;
end
$$;
