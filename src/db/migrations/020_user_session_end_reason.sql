-- Why a dashboard sign-in ended. A session used to be deleted when it ended (signed out, or
-- the provider no longer gives the person a role, or no longer accepts their tokens), so a
-- request arriving just after, with the same cookie, could only say "your sign-in has ended":
-- the page's event stream and its API calls check the session concurrently, and whichever
-- came second lost the reason. An ended session now keeps its row, marked with when and why,
-- and without the provider's tokens; it never authenticates again, and is removed with the
-- expired ones once its cookie's own life is over (expires_at).
alter table backstop.user_sessions
  add column ended_at timestamptz,
  add column end_reason text,
  alter column access_token drop not null;
alter table backstop.user_sessions
  add constraint user_sessions_end_check check ((ended_at is null) = (end_reason is null)),
  add constraint user_sessions_live_has_token check (ended_at is not null or access_token is not null);
