-- Multipart uploads a runner started are recorded as run events (upload_started, then
-- upload_completed or upload_aborted). Garbage collection aborts the ones a dead runner left:
-- this index finds the started ones without reading every event.
create index run_events_uploads on backstop.run_events (run_id) where kind = 'upload_started';
