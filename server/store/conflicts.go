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
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT id, collection, record_id, field, winner_value, winner_deleted,
		winner_stamp, loser_value, loser_deleted, loser_stamp, mutation_id, detected_at, resolved_at IS NOT NULL
		FROM conflicts WHERE id > ? AND (NOT ? OR resolved_at IS NULL) ORDER BY id LIMIT ?`, after, open, limit)
	if err != nil {
		return nil, fmt.Errorf("list conflicts: %w", err)
	}
	defer rows.Close()
	var out []ConflictRecord
	for rows.Next() {
		var (
			c                       ConflictRecord
			winner, loser           sql.NullString
			winnerStamp, loserStamp string
			detected                int64
		)
		if err := rows.Scan(&c.ID, &c.Collection, &c.Record, &c.Conflict.Field, &winner, &c.Conflict.Winner.Deleted,
			&winnerStamp, &loser, &c.Conflict.Loser.Deleted, &loserStamp, &c.Mutation, &detected, &c.Resolved); err != nil {
			return nil, fmt.Errorf("list conflicts: %w", err)
		}
		if winner.Valid {
			c.Conflict.Winner.Value = []byte(winner.String)
		}
		if loser.Valid {
			c.Conflict.Loser.Value = []byte(loser.String)
		}
		if c.Conflict.Winner.Stamp, err = syncproto.ParseStamp(winnerStamp); err != nil {
			return nil, fmt.Errorf("list conflicts: %d: %w", c.ID, err)
		}
		if c.Conflict.Loser.Stamp, err = syncproto.ParseStamp(loserStamp); err != nil {
			return nil, fmt.Errorf("list conflicts: %d: %w", c.ID, err)
		}
		c.DetectedAt = time.UnixMilli(detected).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
