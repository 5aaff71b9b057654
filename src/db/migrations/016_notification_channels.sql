-- Shared notification channels, and the health of every channel.
--
-- A shared channel is one named set of channel settings (an SMTP server and its recipients, a
-- Discord webhook, a Telegram chat…) that many targets use: a target's notifications list
-- holds {"kind": "shared", "channel": NAME, "on": [...]} for it, next to channels of its own.
-- The run trigger (migration 003) needs nothing new: it reads the list's ids and events, and
-- the notifier looks the settings up when it delivers, so a changed password applies to the
-- notifications already queued. `settings` holds secrets (passwords, tokens, webhook URLs):
-- only Backstop reads it, the API never returns it.
create table backstop.channels (
  id uuid primary key default gen_random_uuid(),
  name text not null unique,
  settings jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- One row per channel that was ever sent to: `key` is 'shared:<channel id>' or
-- 'target:<target id>:<channel id>'. failing_since is set by the first failed delivery after a
-- good one and cleared by the next good one; last_error (never a secret) stays for the record.
-- Written by the notifier after each attempt, outside any run's transaction: a channel that
-- keeps failing is shown as failing and delays nothing.
create table backstop.channel_health (
  key text primary key,
  target_id uuid references backstop.targets (id) on delete cascade,
  shared_channel_id uuid references backstop.channels (id) on delete cascade,
  last_delivered_at timestamptz,
  failing_since timestamptz,
  failures integer not null default 0,
  last_error text,
  last_error_at timestamptz
);
create index channel_health_by_target on backstop.channel_health (target_id);
create index channel_health_by_shared on backstop.channel_health (shared_channel_id);
