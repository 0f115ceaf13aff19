-- Records are found by a 64-bit hash of (collection, id) (sqlitedb.KeyHash)
-- rather than by a unique index of the keys themselves. Record ids are
-- mostly random UUIDs, so each new record's index entry lands in a random
-- page, and a commit of a few thousand writes rewrote most pages of the
-- key index: about 5 MB of WAL per commit at 100,000 records. 8-byte
-- integers take about a third of the pages (bench: server CPU per pushed
-- write -4%, push +5%, with records_by_collection below). A lookup
-- compares the key as well, since two keys may share a hash; the store,
-- which alone writes records, keeps (collection, id) unique: it loads a
-- batch's records before applying it.
ALTER TABLE records ADD COLUMN key_hash INTEGER NOT NULL DEFAULT 0;
UPDATE records SET key_hash = key_hash(collection, id);
DROP INDEX records_by_key;
CREATE INDEX records_by_hash ON records (key_hash);
-- What reads a whole collection (indicators, lists) reads it in order.
CREATE INDEX records_by_collection ON records (collection);
