package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/syncproto"
)

// tokenPrefix marks Ponte device tokens so they are recognisable in a leak.
const tokenPrefix = "ponte_"

// Device is a device registered for a user.
type Device struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	Node      string     `json:"node,omitempty"` // the replica node the token is bound to; "" until first use
	CreatedAt time.Time  `json:"created_at"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	// Pending and Rejected are the device's counts of writes waiting to be
	// sent and writes refused, as it reported them when it last connected.
	Pending  int64 `json:"pending"`
	Rejected int64 `json:"rejected"`
}

// IssueToken registers a new device for an existing user and returns the
// device's id and its bearer token. Only the token's SHA-256 hash is
// stored: the token is shown once. An unknown user is an error wrapping
// ErrNotFound.
func (s *Store) IssueToken(ctx context.Context, user string) (deviceID, token string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err = s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return "", "", fmt.Errorf("issue token: %w", err)
	}
	tx, err := s.db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return "", "", fmt.Errorf("issue token: %w", err)
	}
	defer tx.Rollback()
	var found int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE name = ?`, user).Scan(&found); err != nil {
		return "", "", fmt.Errorf("issue token: %w", err)
	}
	if found == 0 {
		return "", "", fmt.Errorf("issue token: user %q: %w", user, ErrNotFound)
	}
	d, token, err := insertDevice(ctx, tx, user, "", s.now().UnixMilli())
	if err != nil {
		return "", "", fmt.Errorf("issue token: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", "", fmt.Errorf("issue token: %w", err)
	}
	return d.ID, token, nil
}

// insertDevice registers a device for user with a new token, bound to node
// unless node is "".
func insertDevice(ctx context.Context, tx *sql.Tx, user, node string, now int64) (Device, string, error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return Device{}, "", err
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	d := Device{ID: uuid.Must(uuid.NewV7()).String(), User: user, Node: node, CreatedAt: time.UnixMilli(now).UTC()}
	var bound any
	if node != "" {
		bound = node
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO devices (id, user_name, token_hash, node, created_at) VALUES (?, ?, ?, ?, ?)`,
		d.ID, user, hashToken(token), bound, now); err != nil {
		return Device{}, "", fmt.Errorf("device: %w", err)
	}
	return d, token, nil
}

// Devices returns every device, oldest first.
func (s *Store) Devices(ctx context.Context) ([]Device, error) {
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT id, user_name, coalesce(node, ''), created_at, last_seen_at, revoked_at, pending, rejected
		FROM devices ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var created int64
		var seen, revoked sql.NullInt64
		if err := rows.Scan(&d.ID, &d.User, &d.Node, &created, &seen, &revoked, &d.Pending, &d.Rejected); err != nil {
			return nil, fmt.Errorf("devices: %w", err)
		}
		d.CreatedAt = time.UnixMilli(created).UTC()
		if seen.Valid {
			t := time.UnixMilli(seen.Int64).UTC()
			d.LastSeen = &t
		}
		if revoked.Valid {
			t := time.UnixMilli(revoked.Int64).UTC()
			d.Revoked = &t
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ReportDevice records the counts a device reported when it connected.
func (s *Store) ReportDevice(ctx context.Context, id string, pending, rejected int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return fmt.Errorf("report device %s: %w", id, err)
	}
	if _, err := s.db.Writer.ExecContext(ctx, `UPDATE devices SET pending = ?, rejected = ? WHERE id = ?`,
		max(pending, 0), max(rejected, 0), id); err != nil {
		return fmt.Errorf("report device %s: %w", id, err)
	}
	return nil
}

// RevokeDevice revokes a device: its token is refused from now on and the
// device is told to wipe its replica. Revoking twice is harmless; an
// unknown device is an error wrapping ErrNotFound.
func (s *Store) RevokeDevice(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return fmt.Errorf("revoke device %s: %w", id, err)
	}
	res, err := s.db.Writer.ExecContext(ctx, `UPDATE devices SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`,
		s.now().UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("revoke device %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke device %s: %w", id, ErrNotFound)
	}
	return nil
}

// Revoked returns the ids of the devices among ids that are revoked.
func (s *Store) Revoked(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT id FROM devices WHERE revoked_at IS NOT NULL AND id IN (`+
		sqlitedb.Placeholders(len(ids), "?")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("revoked devices: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("revoked devices: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Authenticate returns the device holding token and binds it to node on
// first use. It returns an error wrapping syncproto.ErrUnauthorized for an
// unknown token or a token presented by another replica than the one it is
// bound to, and syncproto.ErrRevoked for a revoked device.
func (s *Store) Authenticate(ctx context.Context, token, node string) (Device, error) {
	var (
		d       Device
		bound   sql.NullString
		revoked sql.NullInt64
	)
	err := s.db.Reader.QueryRowContext(ctx, `SELECT id, user_name, node, revoked_at FROM devices WHERE token_hash = ?`,
		hashToken(token)).Scan(&d.ID, &d.User, &bound, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, syncproto.Errorf(syncproto.CodeUnauthorized, "unknown token")
	}
	if err != nil {
		return Device{}, fmt.Errorf("authenticate: %w", err)
	}
	if revoked.Valid {
		return Device{}, syncproto.Errorf(syncproto.CodeRevoked, "device %s was revoked", d.ID)
	}
	if bound.Valid && bound.String != node {
		return Device{}, syncproto.Errorf(syncproto.CodeUnauthorized, "device %s is bound to another replica", d.ID)
	}
	d.Node = node
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return Device{}, fmt.Errorf("authenticate: %w", err)
	}
	var others int
	if err := s.db.Writer.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE node = ? AND id != ?`,
		node, d.ID).Scan(&others); err != nil {
		return Device{}, fmt.Errorf("authenticate: %w", err)
	}
	if others > 0 { // a copied replica, or a device claiming another's identity
		return Device{}, syncproto.Errorf(syncproto.CodeUnauthorized, "replica %s already belongs to another device", node)
	}
	res, err := s.db.Writer.ExecContext(ctx, `UPDATE devices SET node = ?, last_seen_at = ?
		WHERE id = ? AND (node IS NULL OR node = ?) AND revoked_at IS NULL`, node, s.now().UnixMilli(), d.ID, node)
	if err != nil {
		return Device{}, fmt.Errorf("authenticate: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 { // another replica bound it, or it was revoked, meanwhile
		return Device{}, syncproto.Errorf(syncproto.CodeUnauthorized, "device %s is bound to another replica", d.ID)
	}
	return d, nil
}
