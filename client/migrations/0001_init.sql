-- One row per record the device holds. data is what the app sees: the
-- confirmed server state merged with this device's writes not yet confirmed
-- (deleted = 1 when nothing is visible). The confirmed state is server_data
-- (NULL when equal to data), stamps and tombstone, at server sequence seq
-- (0 when the server has never sent the record).
-- A rowid table with a unique key index: rows are appended however random
-- the record ids are.
CREATE TABLE replica_records (
  collection  TEXT NOT NULL,
  id          TEXT NOT NULL,
  data        TEXT NOT NULL,
  deleted     INTEGER NOT NULL DEFAULT 0,
  seq         INTEGER NOT NULL DEFAULT 0,
  server_data TEXT,
  stamps      TEXT NOT NULL DEFAULT '{}',
  tombstone   TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX replica_records_by_key ON replica_records (collection, id);

-- What apps query: visible records only.
CREATE VIEW records AS
  SELECT collection, id, data FROM replica_records WHERE deleted = 0;

-- Local writes in the order they were made. A row stays until the server's
-- copy of the record includes it: acked_seq is set when the server applied
-- it, and the row goes once the record's confirmed seq reaches acked_seq.
CREATE TABLE outbox (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  id         TEXT NOT NULL UNIQUE,
  collection TEXT NOT NULL,
  record_id  TEXT NOT NULL,
  body       TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  acked_seq  INTEGER
);
CREATE INDEX outbox_by_record ON outbox (collection, record_id);
CREATE INDEX outbox_unacked ON outbox (seq) WHERE acked_seq IS NULL;

-- Writes the server refused, kept for the user and their coordinator.
CREATE TABLE rejected (
  id          TEXT PRIMARY KEY,
  collection  TEXT NOT NULL,
  record_id   TEXT NOT NULL,
  body        TEXT NOT NULL,
  code        TEXT NOT NULL,
  message     TEXT NOT NULL,
  rejected_at INTEGER NOT NULL
);

-- Conflicts the server reported for this device's writes.
CREATE TABLE conflicts (
  id          INTEGER PRIMARY KEY,
  mutation_id TEXT NOT NULL,
  collection  TEXT NOT NULL,
  record_id   TEXT NOT NULL,
  body        TEXT NOT NULL,
  detected_at INTEGER NOT NULL,
  UNIQUE (mutation_id, body)
);

CREATE TABLE cursors (
  scope TEXT PRIMARY KEY,
  seq   INTEGER NOT NULL
);

CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
