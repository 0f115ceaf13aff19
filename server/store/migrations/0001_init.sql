-- The current state of every record: visible field values, their stamps (in
-- syncproto's stored form) and the tombstone stamp. seq is the server
-- sequence of the record's latest change: pulls serve records by seq.
-- seq is the rowid, so a change moves its record to the end of the table:
-- rows are appended, pulls read the table in order, and only the small
-- entries of records_by_key go to random places (record ids are often
-- random UUIDs).
CREATE TABLE records (
  seq        INTEGER PRIMARY KEY,
  rid        INTEGER NOT NULL, -- the record's number: the seq of its first change; never changes
  collection TEXT NOT NULL,
  id         TEXT NOT NULL,
  data       TEXT NOT NULL,
  stamps     TEXT NOT NULL,
  deleted    TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX records_by_key ON records (collection, id);
CREATE UNIQUE INDEX records_by_rid ON records (rid);

-- Append-only log of every applied mutation: the idempotency keys (a
-- retried mutation is answered "duplicate" with its seq) and the audit trail
-- (who wrote what, when, from which device).
CREATE TABLE mutations (
  id          TEXT NOT NULL UNIQUE,
  seq         INTEGER NOT NULL,
  record      INTEGER NOT NULL, -- records.rid: new records number up, so this index mostly appends
  op          TEXT NOT NULL,
  data        TEXT,
  stamp       TEXT NOT NULL,
  user_name   TEXT NOT NULL,
  device_id   TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX mutations_by_record ON mutations (record, seq);

-- Concurrent writes to one field: the losing version is kept here for a
-- person to review. Never deleted; resolution is recorded.
CREATE TABLE conflicts (
  id             INTEGER PRIMARY KEY,
  collection     TEXT NOT NULL,
  record_id      TEXT NOT NULL,
  field          TEXT NOT NULL,
  winner_value   TEXT,
  winner_deleted INTEGER NOT NULL,
  winner_stamp   TEXT NOT NULL,
  loser_value    TEXT,
  loser_deleted  INTEGER NOT NULL,
  loser_stamp    TEXT NOT NULL,
  mutation_id    TEXT NOT NULL,
  detected_at    INTEGER NOT NULL,
  resolved_at    INTEGER,
  resolved_by    TEXT
);
CREATE INDEX conflicts_open ON conflicts (resolved_at, id);
CREATE INDEX conflicts_by_record ON conflicts (collection, record_id);
CREATE INDEX conflicts_by_mutation ON conflicts (mutation_id);

CREATE TABLE users (
  name       TEXT PRIMARY KEY,
  role       TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

-- A device holds one token, stored as its SHA-256 hash. node is the replica
-- identifier the device first connected with; the token is bound to it.
CREATE TABLE devices (
  id           TEXT PRIMARY KEY,
  user_name    TEXT NOT NULL REFERENCES users (name),
  token_hash   TEXT NOT NULL UNIQUE,
  node         TEXT,
  created_at   INTEGER NOT NULL,
  last_seen_at INTEGER,
  revoked_at   INTEGER
);
-- A replica's node identifies its writes in every stamp: two devices must
-- never share one, or their edits would not be seen as concurrent.
CREATE UNIQUE INDEX devices_by_node ON devices (node) WHERE node IS NOT NULL;

CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
