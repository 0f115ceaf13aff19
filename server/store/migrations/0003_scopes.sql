-- The scopes each record is in besides "all" (package scope), with the
-- sequence at which it last changed or entered the scope: a device reads
-- a scope's records after its cursor for that scope.
CREATE TABLE record_scopes (
  scope TEXT NOT NULL,
  rid   INTEGER NOT NULL, -- records.rid
  seq   INTEGER NOT NULL,
  PRIMARY KEY (scope, rid)
) WITHOUT ROWID;
CREATE INDEX record_scopes_by_seq ON record_scopes (scope, seq);
CREATE INDEX record_scopes_by_rid ON record_scopes (rid);

-- A record leaving a scope at seq: a device reading the scope past seq is
-- told the record is gone, unless another of its scopes still holds it.
CREATE TABLE scope_exits (
  scope TEXT NOT NULL,
  seq   INTEGER NOT NULL,
  rid   INTEGER NOT NULL
);
CREATE INDEX scope_exits_by_seq ON scope_exits (scope, seq);

-- A person's enrolments, for the registers they appear in.
CREATE INDEX records_enrolments_by_person ON records (json_extract(data, '$.person_id'))
  WHERE collection = 'enrolments';

-- Records stored before scopes existed.
INSERT OR IGNORE INTO record_scopes (scope, rid, seq)
  SELECT 'site:' || json_extract(data, '$.site_id'), rid, seq FROM records
  WHERE collection IN ('persons', 'appointments') AND json_type(data, '$.site_id') = 'text';
INSERT OR IGNORE INTO record_scopes (scope, rid, seq)
  SELECT 'course:' || id, rid, seq FROM records WHERE collection = 'courses' AND data <> '{}';
INSERT OR IGNORE INTO record_scopes (scope, rid, seq)
  SELECT 'course:' || json_extract(data, '$.course_id'), rid, seq FROM records
  WHERE collection IN ('lessons', 'enrolments', 'attendance') AND json_type(data, '$.course_id') = 'text';
INSERT OR IGNORE INTO record_scopes (scope, rid, seq)
  SELECT 'register:' || json_extract(e.data, '$.course_id'), p.rid, max(p.seq, e.seq)
  FROM records e JOIN records p ON p.collection = 'persons' AND p.id = json_extract(e.data, '$.person_id')
  WHERE e.collection = 'enrolments' AND json_type(e.data, '$.course_id') = 'text'
    AND coalesce(json_extract(e.data, '$.status'), '') <> 'withdrawn';
