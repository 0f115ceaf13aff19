package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Write is one applied mutation of a record as the audit trail shows it:
// what was written, by whom, from which device, when.
type Write struct {
	Mutation   string          `json:"mutation"`
	Seq        int64           `json:"seq"`
	Op         string          `json:"op"`
	Data       json.RawMessage `json:"data,omitempty"` // the fields written; absent for a delete
	Stamp      string          `json:"stamp"`
	User       string          `json:"user"`
	Device     string          `json:"device"`
	ReceivedAt time.Time       `json:"received_at"`
}

// History returns the audit trail of a record: every write applied to it,
// oldest first. A record never written has none.
func (s *Store) History(ctx context.Context, collection, id string) ([]Write, error) {
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT m.id, m.seq, m.op, m.data, m.stamp, m.user_name, m.device_id, m.received_at
		FROM mutations m JOIN records r ON r.rid = m.record
		WHERE r.key_hash = key_hash(?1, ?2) AND +r.collection = ?1 AND r.id = ?2 ORDER BY m.seq, m.rowid`, collection, id)
	if err != nil {
		return nil, fmt.Errorf("history of %s/%s: %w", collection, id, err)
	}
	defer rows.Close()
	var out []Write
	for rows.Next() {
		var w Write
		var data *string
		var at int64
		if err := rows.Scan(&w.Mutation, &w.Seq, &w.Op, &data, &w.Stamp, &w.User, &w.Device, &at); err != nil {
			return nil, fmt.Errorf("history of %s/%s: %w", collection, id, err)
		}
		if data != nil {
			w.Data = json.RawMessage(*data)
		}
		w.ReceivedAt = time.UnixMilli(at).UTC()
		out = append(out, w)
	}
	return out, rows.Err()
}
