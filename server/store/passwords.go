package store

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

// passwordIterations is OWASP's recommendation for PBKDF2-HMAC-SHA256.
const passwordIterations = 600_000

// ErrBadLogin is returned by Login for an unknown user, a wrong password,
// or a user whose role may not sign in to the web pages.
var ErrBadLogin = errors.New("wrong user name or password")

// WebSessionTTL is how long a web sign-in lasts.
const WebSessionTTL = 12 * time.Hour

// SetPassword sets the password a coordinator or admin signs in to the web
// pages with: at least 10 characters. It is stored as a salted
// PBKDF2-SHA256 hash, and the user's open sessions end.
func (s *Store) SetPassword(ctx context.Context, user, password string) error {
	u, err := s.GetUser(ctx, user)
	if err != nil {
		return err
	}
	if u.Role != scope.Coordinator && u.Role != scope.Admin {
		return fmt.Errorf("set password of %q: %w", user, syncproto.Errorf(syncproto.CodeInvalid, "only coordinators and admins sign in to the web pages"))
	}
	if len([]rune(password)) < 10 {
		return fmt.Errorf("set password of %q: %w", user, syncproto.Errorf(syncproto.CodeInvalid, "a password has 10 characters or more"))
	}
	h, err := hashPassword(password)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", user, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return fmt.Errorf("set password of %s: %w", user, err)
	}
	if _, err := s.db.Writer.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE name = ?`, h, user); err != nil {
		return fmt.Errorf("set password of %q: %w", user, err)
	}
	// A new password ends every session the old one opened, and sessions
	// past their time go with them.
	if _, err := s.db.Writer.ExecContext(ctx, `DELETE FROM web_sessions WHERE user_name = ? OR expires_at < ?`,
		user, s.now().UnixMilli()); err != nil {
		return fmt.Errorf("set password of %q: end sessions: %w", user, err)
	}
	return nil
}

func hashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, passwordIterations, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", passwordIterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

func checkPassword(stored, password string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// WebSession is a signed-in browser.
type WebSession struct {
	User    User
	CSRF    string // every form and API write carries it
	Expires time.Time
}

// Login checks a coordinator's or admin's password and opens a web
// session: it returns the session's cookie value (shown once; only its hash
// is stored). A wrong name or password is ErrBadLogin.
func (s *Store) Login(ctx context.Context, user, password string) (string, WebSession, error) {
	var stored sql.NullString
	err := s.db.Reader.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE name = ?`, user).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !stored.Valid) {
		checkPassword("pbkdf2-sha256$600000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", password) // same time either way
		return "", WebSession{}, ErrBadLogin
	}
	if err != nil {
		return "", WebSession{}, fmt.Errorf("login: %w", err)
	}
	if !checkPassword(stored.String, password) {
		return "", WebSession{}, ErrBadLogin
	}
	u, err := s.GetUser(ctx, user)
	if err != nil {
		return "", WebSession{}, fmt.Errorf("login: %w", err)
	}
	if u.Role != scope.Coordinator && u.Role != scope.Admin {
		return "", WebSession{}, ErrBadLogin
	}
	id, csrf := randomToken(), randomToken()
	now := s.now()
	ws := WebSession{User: u, CSRF: csrf, Expires: now.Add(WebSessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return "", WebSession{}, fmt.Errorf("log in %s: %w", user, err)
	}
	if _, err := s.db.Writer.ExecContext(ctx, `INSERT INTO web_sessions (id_hash, user_name, csrf, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`, hashToken(id), user, csrf, now.UnixMilli(), ws.Expires.UnixMilli()); err != nil {
		return "", WebSession{}, fmt.Errorf("login: %w", err)
	}
	return id, ws, nil
}

// WebSessionOf returns the session a cookie value opens, or ErrNotFound
// when it is unknown, ended or expired.
func (s *Store) WebSessionOf(ctx context.Context, cookie string) (WebSession, error) {
	var user, csrf string
	var expires int64
	err := s.db.Reader.QueryRowContext(ctx, `SELECT user_name, csrf, expires_at FROM web_sessions WHERE id_hash = ?`,
		hashToken(cookie)).Scan(&user, &csrf, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && expires < s.now().UnixMilli()) {
		return WebSession{}, ErrNotFound
	}
	if err != nil {
		return WebSession{}, fmt.Errorf("web session: %w", err)
	}
	u, err := s.GetUser(ctx, user)
	if err != nil {
		return WebSession{}, fmt.Errorf("web session: %w", err)
	}
	return WebSession{User: u, CSRF: csrf, Expires: time.UnixMilli(expires).UTC()}, nil
}

// Logout ends the session a cookie value opens.
func (s *Store) Logout(ctx context.Context, cookie string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return fmt.Errorf("log out: %w", err)
	}
	if _, err := s.db.Writer.ExecContext(ctx, `DELETE FROM web_sessions WHERE id_hash = ?`, hashToken(cookie)); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
