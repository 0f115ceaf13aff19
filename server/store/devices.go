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

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/syncproto"
)

// tokenPrefix marks Ponte device tokens so they are recognisable in a leak.
const tokenPrefix = "ponte_"

// Device is a device registered for a user.
type Device struct {
	ID      string
	User    string
	Node    string // the replica node the token is bound to; "" until first use
	Revoked bool
}

// IssueToken registers a new device for user, creating the user if needed,
// and returns the device's id and its bearer token. Only the token's SHA-256
// hash is stored: the token is shown once.
func (s *Store) IssueToken(ctx context.Context, user string) (deviceID, token string, err error) {
	if user == "" || len(user) > 200 {
		return "", "", syncproto.Errorf(syncproto.CodeInvalid, "user name must be 1 to 200 bytes")
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", fmt.Errorf("issue token: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	deviceID = uuid.Must(uuid.NewV7()).String()
	now := s.now().UnixMilli()

	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return "", "", fmt.Errorf("issue token: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, role, created_at) VALUES (?, 'coordinator', ?)
		ON CONFLICT DO NOTHING`, user, now); err != nil {
		return "", "", fmt.Errorf("issue token: user: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO devices (id, user_name, token_hash, created_at) VALUES (?, ?, ?, ?)`,
		deviceID, user, hashToken(token), now); err != nil {
		return "", "", fmt.Errorf("issue token: device: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", "", fmt.Errorf("issue token: %w", err)
	}
	return deviceID, token, nil
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
