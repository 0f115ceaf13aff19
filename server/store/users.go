package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

// Errors of the user and device registry. They wrap syncproto codes so the
// edges report them the same way as every other error.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// EnrolmentCodeTTL is how long an enrolment code stays valid.
const EnrolmentCodeTTL = 7 * 24 * time.Hour

// Site is an association, a one-stop shop or a school.
type Site struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// User is a person who uses Ponte, with their role and where they work.
type User struct {
	Name    string     `json:"name"`
	Role    scope.Role `json:"role"`
	Sites   []string   `json:"sites,omitempty"`   // site ids, for mediators
	Courses []string   `json:"courses,omitempty"` // course ids, for teachers
}

// AddSite creates a site and returns its id (a UUIDv7). A name already
// taken is an error wrapping ErrExists.
func (s *Store) AddSite(ctx context.Context, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return "", fmt.Errorf("add site: %w", syncproto.Errorf(syncproto.CodeInvalid, "a site name is 1 to 200 bytes"))
	}
	id := uuid.Must(uuid.NewV7()).String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return "", fmt.Errorf("add site: %w", err)
	}
	res, err := s.db.Writer.ExecContext(ctx, `INSERT INTO sites (id, name, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, id, name, s.now().UnixMilli())
	if err != nil {
		return "", fmt.Errorf("add site %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", fmt.Errorf("add site %q: %w", name, ErrExists)
	}
	return id, nil
}

// Sites returns every site, by name.
func (s *Store) Sites(ctx context.Context) ([]Site, error) {
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT id, name FROM sites ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sites: %w", err)
	}
	defer rows.Close()
	var out []Site
	for rows.Next() {
		var st Site
		if err := rows.Scan(&st.ID, &st.Name); err != nil {
			return nil, fmt.Errorf("sites: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// SetAssignments replaces the sites and courses of a user (a mediator
// moving to other sites, a teacher joining or leaving a course). Devices
// already connected are told to reconnect within seconds
// (Server.DisconnectRevoked), and then receive what they gained and remove
// what they lost. Errors are those of AddUser.
func (s *Store) SetAssignments(ctx context.Context, name string, sites, courses []string) error {
	u, err := s.GetUser(ctx, name)
	if err != nil {
		return err
	}
	u.Sites, u.Courses = sites, courses
	if err := u.check(); err != nil {
		return fmt.Errorf("assign %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return fmt.Errorf("set assignments of %s: %w", name, err)
	}
	tx, err := s.db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("assign %q: %w", name, err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM user_sites WHERE user_name = ?`, `DELETE FROM user_courses WHERE user_name = ?`} {
		if _, err := tx.ExecContext(ctx, q, name); err != nil {
			return fmt.Errorf("assign %q: %w", name, err)
		}
	}
	if err := assign(ctx, tx, u); err != nil {
		return fmt.Errorf("assign %q: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("assign %q: %w", name, err)
	}
	return nil
}

// assign records a user's sites and courses; sites must exist.
func assign(ctx context.Context, tx *sql.Tx, u User) error {
	for _, site := range u.Sites {
		var found int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sites WHERE id = ?`, site).Scan(&found); err != nil {
			return err
		}
		if found == 0 {
			return fmt.Errorf("site %s: %w", site, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO user_sites (user_name, site_id) VALUES (?, ?)`, u.Name, site); err != nil {
			return err
		}
	}
	for _, course := range u.Courses {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO user_courses (user_name, course_id) VALUES (?, ?)`, u.Name, course); err != nil {
			return err
		}
	}
	return nil
}

// AddUser creates a user. A mediator needs at least one site and a teacher
// at least one course; sites must exist. Errors wrap ErrExists for a name
// taken, ErrNotFound for an unknown site, and syncproto.ErrInvalid for a
// bad name, role or assignment.
func (s *Store) AddUser(ctx context.Context, u User) error {
	if err := u.check(); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	tx, err := s.db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO users (name, role, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		u.Name, string(u.Role), s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("add user %q: %w", u.Name, ErrExists)
	}
	if err := assign(ctx, tx, u); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	return nil
}

func (u User) check() error {
	switch {
	case u.Name == "" || len(u.Name) > 100 || strings.TrimSpace(u.Name) != u.Name:
		return syncproto.Errorf(syncproto.CodeInvalid, "a user name is 1 to 100 bytes, without surrounding spaces")
	case !slices.Contains(scope.Roles(), u.Role):
		return syncproto.Errorf(syncproto.CodeInvalid, "role %q is not one of %v", u.Role, scope.Roles())
	case u.Role == scope.Mediator && len(u.Sites) == 0:
		return syncproto.Errorf(syncproto.CodeInvalid, "a mediator works at one site or more (--site)")
	case u.Role == scope.Teacher && len(u.Courses) == 0:
		return syncproto.Errorf(syncproto.CodeInvalid, "a teacher teaches one course or more (--course)")
	}
	for _, c := range u.Courses {
		if uuid.Validate(c) != nil {
			return syncproto.Errorf(syncproto.CodeInvalid, "course %q is not a course id", c)
		}
	}
	return nil
}

// GetUser returns a user with their sites and courses, or an error wrapping
// ErrNotFound.
func (s *Store) GetUser(ctx context.Context, name string) (User, error) {
	u := User{Name: name}
	err := s.db.Reader.QueryRowContext(ctx, `SELECT role FROM users WHERE name = ?`, name).Scan(&u.Role)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", name, err)
	}
	for q, dst := range map[string]*[]string{
		`SELECT site_id FROM user_sites WHERE user_name = ? ORDER BY site_id`:       &u.Sites,
		`SELECT course_id FROM user_courses WHERE user_name = ? ORDER BY course_id`: &u.Courses,
	} {
		rows, err := s.db.Reader.QueryContext(ctx, q, name)
		if err != nil {
			return User{}, fmt.Errorf("user %q: %w", name, err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return User{}, fmt.Errorf("user %q: %w", name, err)
			}
			*dst = append(*dst, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return User{}, fmt.Errorf("user %q: %w", name, err)
		}
	}
	return u, nil
}

// codeAlphabet has no 0/O or 1/I, which people confuse when typing a code
// read out over the phone.
const codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// IssueEnrolmentCode returns a one-time code for user, valid for
// EnrolmentCodeTTL, such as "K7QM-4XRA-P2HD" (60 random bits). A device
// exchanges it for its token (Enrol). Only its hash is stored.
func (s *Store) IssueEnrolmentCode(ctx context.Context, user string) (string, time.Time, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("enrolment code: %w", err)
	}
	var code strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			code.WriteByte('-')
		}
		code.WriteByte(codeAlphabet[int(c)%len(codeAlphabet)]) // 256 is a multiple of 32: no bias
	}
	now := s.now()
	expires := now.Add(EnrolmentCodeTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return "", time.Time{}, fmt.Errorf("issue enrolment code for %s: %w", user, err)
	}
	if _, err := s.db.Writer.ExecContext(ctx, `INSERT INTO enrolment_codes (code_hash, user_name, created_at, expires_at)
		SELECT ?, name, ?, ? FROM users WHERE name = ?`, hashCode(code.String()), now.UnixMilli(), expires.UnixMilli(), user); err != nil {
		return "", time.Time{}, fmt.Errorf("enrolment code for %q: %w", user, err)
	}
	var n int
	if err := s.db.Writer.QueryRowContext(ctx, `SELECT changes()`).Scan(&n); err != nil || n != 1 {
		return "", time.Time{}, fmt.Errorf("enrolment code for %q: %w", user, ErrNotFound)
	}
	return code.String(), expires, nil
}

// hashCode hashes an enrolment code as typed: case, spaces and dashes do
// not matter.
func hashCode(code string) string {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, code)
	h := sha256.Sum256([]byte("enrol:" + norm))
	return hex.EncodeToString(h[:])
}

// Enrol exchanges a one-time enrolment code for a new device of its user,
// bound to the replica node, and returns the device and its token. A code
// unknown, used or expired is an error wrapping syncproto.ErrUnauthorized.
func (s *Store) Enrol(ctx context.Context, code, node string) (Device, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return Device{}, "", fmt.Errorf("enrol: %w", err)
	}
	tx, err := s.db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return Device{}, "", fmt.Errorf("enrol: %w", err)
	}
	defer tx.Rollback()
	var user string
	var expires int64
	var used sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT user_name, expires_at, used_at FROM enrolment_codes WHERE code_hash = ?`,
		hashCode(code)).Scan(&user, &expires, &used)
	now := s.now().UnixMilli()
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Device{}, "", syncproto.Errorf(syncproto.CodeUnauthorized, "unknown enrolment code")
	case err != nil:
		return Device{}, "", fmt.Errorf("enrol: %w", err)
	case used.Valid:
		return Device{}, "", syncproto.Errorf(syncproto.CodeUnauthorized, "enrolment code already used")
	case expires < now:
		return Device{}, "", syncproto.Errorf(syncproto.CodeUnauthorized, "enrolment code expired")
	}
	var others int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE node = ?`, node).Scan(&others); err != nil {
		return Device{}, "", fmt.Errorf("enrol: %w", err)
	}
	if others > 0 {
		return Device{}, "", syncproto.Errorf(syncproto.CodeUnauthorized, "replica %s already belongs to a device", node)
	}
	d, token, err := insertDevice(ctx, tx, user, node, now)
	if err != nil {
		return Device{}, "", fmt.Errorf("enrol: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE enrolment_codes SET used_at = ?, device_id = ? WHERE code_hash = ?`,
		now, d.ID, hashCode(code)); err != nil {
		return Device{}, "", fmt.Errorf("enrol: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Device{}, "", fmt.Errorf("enrol: %w", err)
	}
	return d, token, nil
}
