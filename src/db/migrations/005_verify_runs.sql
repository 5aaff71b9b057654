-- Verification drills are runs too: they get leases, heartbeats, cancellation and the reaper
-- for free. A drill's subject is the backup run it restores; its result is also recorded on
-- the subject (runs.verification) so retention can keep the newest verified backup.
alter table backstop.runs add column kind text not null default 'backup' check (kind in ('backup', 'verify'));
alter table backstop.runs add column subject_run_id uuid references backstop.runs (id) on delete cascade;
alter table backstop.runs add constraint runs_verify_has_subject check ((kind = 'verify') = (subject_run_id is not null));
create index runs_by_subject on backstop.runs (subject_run_id) where subject_run_id is not null;
