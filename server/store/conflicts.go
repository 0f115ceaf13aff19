package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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
