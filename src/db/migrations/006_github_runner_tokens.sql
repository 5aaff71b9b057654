-- GitHub runner tokens: long-lived, kept in one repository's Actions secrets. A job of that
-- repository may claim only a run Backstop dispatched to it (receiving that run's own runner
-- token in exchange) and report its job's outcome; nothing else. Like API tokens, only the
-- SHA-256 is stored.
create table backstop.github_runner_tokens (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  -- owner/repo as GitHub spells it; compared case-insensitively (GitHub names are).
  repository text not null check (repository ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$'),
  token_hash text not null unique,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
