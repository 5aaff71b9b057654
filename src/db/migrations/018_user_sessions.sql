-- People signing in to the dashboard with OpenID Connect, and who holds each API token.
--
-- A sign-in attempt lives from the redirect to the provider until the browser comes back to
-- /auth/callback (at most ten minutes): its state, nonce and PKCE verifier are checked there and
-- the row is deleted, so a callback URL can be used once. The browser holds the state in a
-- cookie as well, so a callback started in another browser (login CSRF) finds no match.
create table backstop.sign_in_attempts (
  state_hash text primary key,
  nonce text not null,
  code_verifier text not null,
  created_at timestamptz not null default now()
);

-- A signed-in person. The cookie holds a random value; the catalog keeps only its SHA-256, and
-- the CSRF token every cookie-authenticated write must carry. The provider's tokens are kept so
-- that the server can ask the provider, at each request, whether the person still belongs to
-- the groups that gave them a role (src/server/sessionCheck.ts).
create table backstop.user_sessions (
  id uuid primary key default gen_random_uuid(),
  cookie_hash text not null unique,
  csrf_token text not null,
  provider text not null,
  subject text not null,
  email text,
  name text,
  access_token text not null,
  refresh_token text,
  access_expires_at timestamptz,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index user_sessions_by_expiry on backstop.user_sessions (expires_at);

-- A person or a service name, for tokens made for machines ("ci", "alice@example.com").
alter table backstop.api_tokens add column owner text;
