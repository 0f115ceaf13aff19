-- A queued write's body in a table of its own. Acknowledging a write sets
-- its outbox row's acked_seq, and SQLite rewrites a whole row to change one
-- column: with the body in the row, every acknowledgement wrote the write
-- again (~500 bytes of WAL, then of checkpoint). Now it rewrites ~100
-- bytes (bench: client CPU per pushed write -13%).
CREATE TABLE outbox_bodies (
  seq  INTEGER PRIMARY KEY REFERENCES outbox (seq) ON DELETE CASCADE,
  body TEXT NOT NULL
);
INSERT INTO outbox_bodies (seq, body) SELECT seq, body FROM outbox;
ALTER TABLE outbox DROP COLUMN body;
