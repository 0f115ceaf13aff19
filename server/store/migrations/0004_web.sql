-- Coordinators and admins sign in to the web pages with a password, kept
-- only as a PBKDF2-SHA256 hash (store/passwords.go).
ALTER TABLE users ADD COLUMN password_hash TEXT;

-- Signed-in browser sessions: the cookie's SHA-256 hash, whose they are,
-- the token every form must carry (CSRF), and when they end.
CREATE TABLE web_sessions (
  id_hash    TEXT PRIMARY KEY,
  user_name  TEXT NOT NULL REFERENCES users (name),
  csrf       TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);

-- What each device last reported when it connected: writes waiting to be
-- sent and writes the server refused, for the devices page.
ALTER TABLE devices ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;
