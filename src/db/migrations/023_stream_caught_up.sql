-- The recovery point of a continuous target is the newest instant before which every commit is
-- stored. The newest stored commit (last_commit_at) says so only while the source writes; a
-- quiet source would seem to fall behind. A streamer with nothing unstored records here the
-- source's time of a keepalive that found it caught up: the recovery point is the later of the two.
alter table backstop.continuous_streams add column caught_up_at timestamptz;
