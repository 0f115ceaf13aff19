-- Sites (an association, a one-stop shop, a school) and who works where.
CREATE TABLE sites (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);

-- A mediator's sites; a teacher's courses (course ids are records, so no
-- foreign key: a course may be created after its teacher).
CREATE TABLE user_sites (
  user_name TEXT NOT NULL REFERENCES users (name),
  site_id   TEXT NOT NULL REFERENCES sites (id),
  PRIMARY KEY (user_name, site_id)
) WITHOUT ROWID;
CREATE TABLE user_courses (
  user_name TEXT NOT NULL REFERENCES users (name),
  course_id TEXT NOT NULL,
  PRIMARY KEY (user_name, course_id)
) WITHOUT ROWID;

-- One-time enrolment codes: a device exchanges one for its token. Only the
-- code's SHA-256 hash is kept; used_at and device_id record the exchange.
CREATE TABLE enrolment_codes (
  code_hash  TEXT PRIMARY KEY,
  user_name  TEXT NOT NULL REFERENCES users (name),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at    INTEGER,
  device_id  TEXT REFERENCES devices (id)
);
