-- The scopes (space-separated) through which the server showed a record;
-- when a session no longer holds any of them, the record is removed.
-- Records held before scopes existed came through "all".
ALTER TABLE replica_records ADD COLUMN scopes TEXT NOT NULL DEFAULT 'all';
