-- Continuous targets: a logical replication slot streamed into a change archive of segments,
-- and base backups taken at the slot's consistent points (docs/CONTINUOUS.md).

alter table backstop.targets add column continuous boolean not null default false;
-- The tables to follow (`schema.table`); null: every table it can follow safely.
alter table backstop.targets add column continuous_tables text[];
-- A segment closes after this many seconds or bytes of decoded changes, whichever comes first.
alter table backstop.targets add column segment_seconds integer not null default 10 check (segment_seconds > 0);
alter table backstop.targets add column segment_bytes bigint not null default 16777216 check (segment_bytes > 0);
-- The slot guard: WAL the slot holds back on the source. Over the warning an alarm is raised;
-- over the limit the slot is dropped (the source's disk comes first) and continuity restarts.
alter table backstop.targets add column slot_warn_bytes bigint not null default 1073741824 check (slot_warn_bytes > 0);
alter table backstop.targets add column slot_limit_bytes bigint not null default 8589934592 check (slot_limit_bytes > 0);
-- The recovery point bound: an alarm when the newest stored commit is older than this.
alter table backstop.targets add column max_rpo_seconds integer not null default 300 check (max_rpo_seconds > 0);

-- One row per continuous target: its slot, how far the archive reaches, and the streamer's
-- lease. The lease is fenced like a run's: `generation` grows at every takeover and every
-- write of the streamer names it, so a streamer that lost its lease changes nothing.
create table backstop.continuous_streams (
  target_id uuid primary key references backstop.targets (id) on delete cascade,
  slot_name text not null unique,
  publication_name text not null,
  -- starting: slot made, first base backup not yet stored; streaming; stopped: slot dropped.
  state text not null default 'starting' check (state in ('starting', 'streaming', 'stopped')),
  stopped_reason text,
  stopped_at timestamptz,
  -- The newest position durably stored in the archive and confirmed to the slot.
  confirmed_lsn pg_lsn,
  -- Commit time of the newest durably stored transaction: now() minus it is the RPO.
  last_commit_at timestamptz,
  -- What the last streamer pass measured of the slot on the source.
  retained_wal_bytes bigint,
  last_pass_at timestamptz,
  -- Tables left out of the publication and why: [{schema, table, reason, fix}].
  unprotected_tables jsonb not null default '[]',
  lease_owner text,
  lease_expires_at timestamptz,
  generation integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index continuous_streams_lease on backstop.continuous_streams (lease_expires_at) where state <> 'stopped';

-- The catalog's index of stored segments (the store's segment manifests are the truth: an
-- import rebuilds these rows from them). Rows for a slot that was dropped stay: the window
-- they cover is still restorable from its base backups.
create table backstop.change_segments (
  id bigserial primary key,
  target_id uuid not null references backstop.targets (id) on delete cascade,
  slot_name text not null,
  generation integer not null,
  start_lsn pg_lsn not null,
  end_lsn pg_lsn not null,
  first_commit_at timestamptz not null,
  last_commit_at timestamptz not null,
  transactions integer not null,
  manifest_key text not null,
  size bigint not null,
  manifest jsonb not null,
  created_at timestamptz not null default now(),
  unique (target_id, manifest_key)
);
create index change_segments_by_position on backstop.change_segments (target_id, slot_name, end_lsn);
create index change_segments_by_time on backstop.change_segments (target_id, last_commit_at);

-- A base backup's consistent LSN (its manifest's `continuous.consistentLsn`), for the window.
alter table backstop.runs add column base_lsn pg_lsn;
alter table backstop.runs add column base_slot text;
