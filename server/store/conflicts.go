package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

// ConflictRecord is a stored conflict: which record and field, both versions,
// the mutation that met it, and whether a person has resolved it.
type ConflictRecord struct {
	ID         int64              `json:"id"`
	Collection string             `json:"collection"`
	Record     string             `json:"record"`
	Mutation   string             `json:"mutation"`
	DetectedAt time.Time          `json:"detected_at"`
	Resolved   bool               `json:"resolved"`
	Conflict   syncproto.Conflict `json:"conflict"`
}

// Conflicts returns up to limit conflicts with id greater than after, oldest
// first; unresolved only if open is true.
func (s *Store) Conflicts(ctx context.Context, after int64, limit int, open bool) ([]ConflictRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT id, collection, record_id, mutation_id, detected_at,
		resolved_at IS NOT NULL, `+conflictColumns+` FROM conflicts
		WHERE id > ? AND (NOT ? OR resolved_at IS NULL) ORDER BY id LIMIT ?`, after, open, limit)
	if err != nil {
		return nil, fmt.Errorf("list conflicts: %w", err)
	}
	defer rows.Close()
	var out []ConflictRecord
	for rows.Next() {
		var (
			c        ConflictRecord
			detected int64
		)
		c.Conflict, err = scanConflict(rows, &c.ID, &c.Collection, &c.Record, &c.Mutation, &detected, &c.Resolved)
		if err != nil {
			return nil, fmt.Errorf("list conflicts: %w", err)
		}
		c.DetectedAt = time.UnixMilli(detected).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// conflictColumns are the columns scanConflict reads, last in a SELECT.
const conflictColumns = `field, winner_value, winner_deleted, winner_stamp, loser_value, loser_deleted, loser_stamp`

// scanConflict scans a row whose last columns are conflictColumns, the
// others into before.
func scanConflict(rows *sql.Rows, before ...any) (syncproto.Conflict, error) {
	var (
		c                       syncproto.Conflict
		winner, loser           sql.NullString
		winnerStamp, loserStamp string
	)
	dest := append(before, &c.Field, &winner, &c.Winner.Deleted, &winnerStamp, &loser, &c.Loser.Deleted, &loserStamp)
	if err := rows.Scan(dest...); err != nil {
		return c, err
	}
	if winner.Valid {
		c.Winner.Value = []byte(winner.String)
	}
	if loser.Valid {
		c.Loser.Value = []byte(loser.String)
	}
	var err error
	if c.Winner.Stamp, err = syncproto.ParseStamp(winnerStamp); err != nil {
		return c, err
	}
	c.Loser.Stamp, err = syncproto.ParseStamp(loserStamp)
	return c, err
}

// ErrResolved is returned by ResolveConflict for a conflict already decided.
var ErrResolved = errors.New("conflict already resolved")

// ErrStale is returned by ResolveConflict when the field changed after the
// conflict: the decision was made on an outdated value.
var ErrStale = errors.New("the field changed since the conflict; decide again")

// Conflict returns one stored conflict, or an error wrapping ErrNotFound.
func (s *Store) Conflict(ctx context.Context, id int64) (ConflictRecord, error) {
	cs, err := s.Conflicts(ctx, id-1, 1, false)
	if err != nil {
		return ConflictRecord{}, err
	}
	if len(cs) == 0 || cs[0].ID != id {
		return ConflictRecord{}, fmt.Errorf("conflict %d: %w", id, ErrNotFound)
	}
	return cs[0], nil
}

// Author is who wrote a version: the user and device whose replica stamped
// it, or the server itself (a decision made on the web pages, or a write
// re-stamped because its device's clock ran ahead).
type Author struct {
	User   string `json:"user"`
	Device string `json:"device"`
}

// AuthorOf returns who stamped s: its node's device and user.
func (s *Store) AuthorOf(ctx context.Context, stamp syncproto.Stamp) (Author, error) {
	if stamp.Node == s.clock.Node() {
		return Author{User: "server", Device: "server"}, nil
	}
	var a Author
	err := s.db.Reader.QueryRowContext(ctx, `SELECT user_name, id FROM devices WHERE node = ?`, stamp.Node).Scan(&a.User, &a.Device)
	if errors.Is(err, sql.ErrNoRows) {
		return Author{User: "?", Device: stamp.Node}, nil
	}
	if err != nil {
		return Author{}, fmt.Errorf("author of %s: %w", stamp, err)
	}
	return a, nil
}

// Choices for ResolveConflict.
const (
	KeepCurrent = "current" // the value that won stays
	UseOther    = "other"   // the value that lost is written over it
	UseValue    = "value"   // a new value is written
)

// ResolveConflict records a person's decision on a conflict. Keeping the
// current value writes nothing; using the other value or a new one is a
// normal write — by user, from the server, validated by the schema and
// synced to every device in scope — made knowing the current version, so
// it meets no new conflict. Errors wrap ErrNotFound, ErrResolved, ErrStale
// (the field changed since the conflict), or a *syncproto.Error for a value
// the schema refuses.
func (s *Store) ResolveConflict(ctx context.Context, id int64, user, choice string, value json.RawMessage) error {
	// One decision at a time: two coordinators deciding the same conflict
	// must not both write.
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	c, err := s.Conflict(ctx, id)
	if err != nil {
		return err
	}
	if c.Resolved {
		return fmt.Errorf("conflict %d: %w", id, ErrResolved)
	}
	var write json.RawMessage
	switch choice {
	case KeepCurrent:
	case UseOther:
		if c.Conflict.Loser.Deleted || c.Conflict.Loser.Value == nil {
			return fmt.Errorf("conflict %d: %w", id, syncproto.Errorf(syncproto.CodeInvalid, "the other version is a delete; write a value instead"))
		}
		write = c.Conflict.Loser.Value
	case UseValue:
		if !json.Valid(value) {
			return fmt.Errorf("conflict %d: %w", id, syncproto.Errorf(syncproto.CodeBadMessage, "the new value is not JSON"))
		}
		write = value
	default:
		return fmt.Errorf("conflict %d: %w", id, syncproto.Errorf(syncproto.CodeBadMessage, "unknown choice %q", choice))
	}
	if write != nil {
		rec, _, err := s.Get(ctx, c.Collection, c.Record)
		if err != nil {
			return err
		}
		// Decided on what the person saw: if the field changed since, they
		// must look again rather than overwrite a newer edit unseen.
		if rec.Stamps[c.Conflict.Field] != c.Conflict.Winner.Stamp {
			return fmt.Errorf("conflict %d: %w", id, ErrStale)
		}
		m := syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: c.Collection, Record: c.Record,
			Op: syncproto.OpPut, Data: map[string]json.RawMessage{c.Conflict.Field: write}, Stamp: s.clock.Now(),
			Base: map[string]syncproto.Stamp{}}
		if st, ok := rec.Stamps[c.Conflict.Field]; ok {
			m.Base[c.Conflict.Field] = st
		}
		results, err := s.Apply(ctx, Actor{User: user, Device: "web", Node: s.clock.Node(), Scopes: []string{scope.All}},
			[]syncproto.Mutation{m})
		if err != nil {
			return fmt.Errorf("conflict %d: %w", id, err)
		}
		if r := results[0]; r.Status == syncproto.StatusRejected {
			return fmt.Errorf("conflict %d: %w", id, &syncproto.Error{Code: r.Code, Message: r.Message, Fields: r.Fields})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing may be written (durable.go)
		return fmt.Errorf("resolve conflict %d: %w", id, err)
	}
	res, err := s.db.Writer.ExecContext(ctx, `UPDATE conflicts SET resolved_at = ?, resolved_by = ? WHERE id = ? AND resolved_at IS NULL`,
		s.now().UnixMilli(), user, id)
	if err != nil {
		return fmt.Errorf("conflict %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("conflict %d: %w", id, ErrResolved)
	}
	return nil
}
