package client

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/syncproto"
)

// row is a record's row in replica_records.
type row struct {
	found      bool
	data       []byte // visible
	seq        int64
	serverData []byte // nil when equal to data
	stamps     []byte
	tombstone  string
}

func loadRow(ctx context.Context, tx *sqlitedb.Tx, collection, id string) (row, error) {
	var r row
	var serverData sql.NullString
	err := tx.QueryRow(ctx, `SELECT data, seq, server_data, stamps, tombstone FROM replica_records
		WHERE collection = ? AND id = ?`, collection, id).Scan(&r.data, &r.seq, &serverData, &r.stamps, &r.tombstone)
	if errors.Is(err, sql.ErrNoRows) {
		return row{stamps: []byte("{}")}, nil
	}
	if err != nil {
		return r, fmt.Errorf("load %s/%s: %w", collection, id, err)
	}
	r.found = true
	if serverData.Valid {
		r.serverData = []byte(serverData.String)
	}
	return r, nil
}

// confirmed decodes the server's state of the record.
func (r row) confirmed(collection, id string) (syncproto.Record, error) {
	data := r.serverData
	if data == nil {
		data = r.data
	}
	ch := syncproto.Change{Collection: collection, ID: id, Data: data, Stamps: r.stamps}
	var err error
	if ch.Deleted, err = syncproto.ParseStamp(r.tombstone); err != nil {
		return syncproto.Record{}, err
	}
	return ch.Record()
}

func loadPending(ctx context.Context, tx *sqlitedb.Tx, collection, id string) ([]syncproto.Mutation, error) {
	rows, err := tx.Query(ctx, `SELECT body FROM outbox WHERE collection = ? AND record_id = ? ORDER BY seq`, collection, id)
	if err != nil {
		return nil, fmt.Errorf("pending %s/%s: %w", collection, id, err)
	}
	defer rows.Close()
	var out []syncproto.Mutation
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("pending %s/%s: %w", collection, id, err)
		}
		var m syncproto.Mutation
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("pending %s/%s: %w", collection, id, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// overlay is what the user sees: the confirmed state merged with the
// device's writes the confirmed state does not include yet. It uses the same
// merge as the server, so it predicts the server's result.
func overlay(confirmed syncproto.Record, pending []syncproto.Mutation) syncproto.Record {
	v := confirmed
	for _, m := range pending {
		v = syncproto.Merge(v, m.AsRecord())
	}
	return v
}

// writeLocal stamps m, records in m.Base the stamps of the versions its
// writer sees, queues it and updates the visible record.
func (c *Client) writeLocal(ctx context.Context, tx *sqlitedb.Tx, m *syncproto.Mutation) error {
	r, err := loadRow(ctx, tx, m.Collection, m.Record)
	if err != nil {
		return err
	}
	confirmed, err := r.confirmed(m.Collection, m.Record)
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", m.Collection, m.Record, err)
	}
	pending, err := loadPending(ctx, tx, m.Collection, m.Record)
	if err != nil {
		return err
	}
	visible := overlay(confirmed, pending)
	m.Base = map[string]syncproto.Stamp{}
	fields := m.Data
	if m.Op == syncproto.OpDelete {
		fields = visible.Data
	}
	for f := range fields {
		if s := visible.FieldStamp(f); !s.IsZero() {
			m.Base[f] = s
			c.clock.Observe(s) // the new write must order after what its writer saw
		}
	}
	m.Stamp = c.clock.Now()
	if err := m.Validate(); err != nil {
		return fmt.Errorf("write %s/%s: %w", m.Collection, m.Record, err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", m.Collection, m.Record, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, collection, record_id, body, created_at) VALUES (?, ?, ?, ?, ?)`,
		m.ID, m.Collection, m.Record, body, c.opts.Now().UnixMilli()); err != nil {
		return fmt.Errorf("write %s/%s: queue: %w", m.Collection, m.Record, err)
	}
	return storeRow(ctx, tx, m.Collection, m.Record, r.seq, confirmed, syncproto.Merge(visible, m.AsRecord()), true)
}

// storeRow writes a record's confirmed state and what is visible.
func storeRow(ctx context.Context, tx *sqlitedb.Tx, collection, id string, seq int64, confirmed, visible syncproto.Record, pending bool) error {
	if seq == 0 && !pending {
		_, err := tx.Exec(ctx, `DELETE FROM replica_records WHERE collection = ? AND id = ?`, collection, id)
		return err
	}
	var serverData any
	if pending {
		serverData = string(syncproto.EncodeData(confirmed.Data))
	}
	_, err := tx.Exec(ctx, `INSERT INTO replica_records (collection, id, data, deleted, seq, server_data, stamps, tombstone)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data,
		deleted = excluded.deleted, seq = excluded.seq, server_data = excluded.server_data,
		stamps = excluded.stamps, tombstone = excluded.tombstone`,
		collection, id, string(syncproto.EncodeData(visible.Data)), !visible.Exists(), seq, serverData,
		string(syncproto.EncodeStamps(confirmed.Stamps)), confirmed.Deleted.String())
	if err != nil {
		return fmt.Errorf("store %s/%s: %w", collection, id, err)
	}
	return nil
}

// recompute rebuilds a record's visible state after its confirmed state or
// its queued writes changed. incoming, if not nil, is a newer confirmed
// state from the server. Queued writes the confirmed state now includes are
// dropped from the outbox.
func recompute(ctx context.Context, tx *sqlitedb.Tx, collection, id string, incoming *syncproto.Change) error {
	r, err := loadRow(ctx, tx, collection, id)
	if err != nil {
		return err
	}
	seq := r.seq
	var confirmed syncproto.Record
	if incoming != nil {
		seq = incoming.Seq
		confirmed, err = incoming.Record()
	} else {
		confirmed, err = r.confirmed(collection, id)
	}
	if err != nil {
		return fmt.Errorf("recompute %s/%s: %w", collection, id, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE collection = ? AND record_id = ?
		AND acked_seq IS NOT NULL AND acked_seq <= ?`, collection, id, seq); err != nil {
		return fmt.Errorf("recompute %s/%s: %w", collection, id, err)
	}
	pending, err := loadPending(ctx, tx, collection, id)
	if err != nil {
		return err
	}
	return storeRow(ctx, tx, collection, id, seq, confirmed, overlay(confirmed, pending), len(pending) > 0)
}

// applyPage applies changes from the server and the cursors that follow
// them, in the caller's transaction. A change older than the copy held is
// skipped, so pages and live changes may overlap or repeat.
func (c *Client) applyPage(ctx context.Context, tx *sqlitedb.Tx, page *syncproto.Page) ([]RecordKey, error) {
	withPending := map[[2]string]bool{}
	rows, err := tx.Query(ctx, `SELECT DISTINCT collection, record_id FROM outbox`)
	if err != nil {
		return nil, fmt.Errorf("apply page: %w", err)
	}
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			rows.Close()
			return nil, fmt.Errorf("apply page: %w", err)
		}
		withPending[k] = true
	}
	rows.Close()

	changed := make([]RecordKey, 0, len(page.Changes))
	for i := range page.Changes {
		ch := &page.Changes[i]
		key := [2]string{ch.Collection, ch.ID}
		if ch.Gone || withPending[key] {
			var held int64
			if err := tx.QueryRow(ctx, `SELECT seq FROM replica_records WHERE collection = ? AND id = ?`,
				ch.Collection, ch.ID).Scan(&held); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID, err)
			}
			if held >= ch.Seq {
				continue
			}
		}
		if ch.Gone {
			if err := c.forget(ctx, tx, ch.Collection, ch.ID); err != nil {
				return nil, err
			}
			changed = append(changed, RecordKey{Collection: ch.Collection, ID: ch.ID})
			continue
		}
		if !isObject(ch.Data) || !isObject(ch.Stamps) {
			return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID,
				syncproto.Errorf(syncproto.CodeBadMessage, "data and stamps must be JSON objects"))
		}
		if withPending[key] {
			// Drop the queued writes this state includes; recompute only if
			// some remain to overlay.
			if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE collection = ? AND record_id = ?
				AND acked_seq IS NOT NULL AND acked_seq <= ?`, ch.Collection, ch.ID, ch.Seq); err != nil {
				return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID, err)
			}
			var remaining int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE collection = ? AND record_id = ?`,
				ch.Collection, ch.ID).Scan(&remaining); err != nil {
				return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID, err)
			}
			if remaining > 0 {
				if err := recompute(ctx, tx, ch.Collection, ch.ID, ch); err != nil {
					return nil, err
				}
				changed = append(changed, RecordKey{Collection: ch.Collection, ID: ch.ID})
				continue
			}
		}
		// One statement applies the change unless the replica already holds
		// this seq or a later one (pages and pushed changes may overlap).
		deleted := bytes.Equal(ch.Data, []byte("{}"))
		res, err := tx.Exec(ctx, `INSERT INTO replica_records (collection, id, data, deleted, seq, server_data, stamps, tombstone)
			VALUES (?, ?, ?, ?, ?, NULL, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data,
			deleted = excluded.deleted, seq = excluded.seq, server_data = NULL, stamps = excluded.stamps,
			tombstone = excluded.tombstone WHERE excluded.seq > replica_records.seq`, ch.Collection, ch.ID,
			string(ch.Data), deleted, ch.Seq, string(ch.Stamps), ch.Deleted.String())
		if err != nil {
			return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			changed = append(changed, RecordKey{Collection: ch.Collection, ID: ch.ID})
		}
	}
	for scope, seq := range page.Cursors {
		if _, err := tx.Exec(ctx, `INSERT INTO cursors (scope, seq) VALUES (?, ?)
			ON CONFLICT (scope) DO UPDATE SET seq = max(seq, excluded.seq)`, scope, seq); err != nil {
			return nil, fmt.Errorf("apply page: cursor %s: %w", scope, err)
		}
	}
	return changed, nil
}

// forget removes a record that left the device's scopes, and the writes to
// it the server already applied.
func (c *Client) forget(ctx context.Context, tx *sqlitedb.Tx, collection, id string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE collection = ? AND record_id = ? AND acked_seq IS NOT NULL`,
		collection, id); err != nil {
		return fmt.Errorf("forget %s/%s: %w", collection, id, err)
	}
	pending, err := loadPending(ctx, tx, collection, id)
	if err != nil {
		return err
	}
	return storeRow(ctx, tx, collection, id, 0, syncproto.Record{}, overlay(syncproto.Record{}, pending), len(pending) > 0)
}

func isObject(b json.RawMessage) bool {
	return len(b) >= 2 && b[0] == '{' && json.Valid(b)
}

// applyResults records the server's answers to a push: applied writes wait
// for their echo, refused ones move to the rejected list, reported
// conflicts are kept.
func (c *Client) applyResults(ctx context.Context, tx *sqlitedb.Tx, sent []syncproto.Mutation, results []syncproto.MutationResult) ([]RecordKey, error) {
	if len(results) != len(sent) {
		return nil, syncproto.Errorf(syncproto.CodeBadMessage, "push of %d answered with %d results", len(sent), len(results))
	}
	now := c.opts.Now().UnixMilli()
	var touched, recomp []RecordKey
	for i, r := range results {
		m := sent[i]
		if r.ID != m.ID {
			return nil, syncproto.Errorf(syncproto.CodeBadMessage, "result %d is for %s, want %s", i, r.ID, m.ID)
		}
		key := RecordKey{Collection: m.Collection, ID: m.Record}
		switch r.Status {
		case syncproto.StatusApplied, syncproto.StatusDuplicate:
			if !r.Stamp.IsZero() {
				m.Stamp = r.Stamp // the server re-stamped a write from a clock too far ahead
				body, err := json.Marshal(m)
				if err != nil {
					return nil, err
				}
				if _, err := tx.Exec(ctx, `UPDATE outbox SET body = ? WHERE id = ?`, body, m.ID); err != nil {
					return nil, fmt.Errorf("result %s: %w", m.ID, err)
				}
			}
			if _, err := tx.Exec(ctx, `UPDATE outbox SET acked_seq = ? WHERE id = ?`, r.Seq, m.ID); err != nil {
				return nil, fmt.Errorf("result %s: %w", m.ID, err)
			}
			// The write stays in the overlay until the server's copy of the
			// record includes it; if the replica already holds that copy (a
			// duplicate), or the server re-stamped it, recompute now.
			var held int64
			if err := tx.QueryRow(ctx, `SELECT seq FROM replica_records WHERE collection = ? AND id = ?`,
				m.Collection, m.Record).Scan(&held); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("result %s: %w", m.ID, err)
			}
			if held >= r.Seq || !r.Stamp.IsZero() {
				recomp = appendKey(recomp, key)
			}
			for _, cf := range r.Conflicts {
				body, err := json.Marshal(cf)
				if err != nil {
					return nil, err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO conflicts (mutation_id, collection, record_id, body, detected_at)
					VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, m.ID, m.Collection, m.Record, body, now); err != nil {
					return nil, fmt.Errorf("result %s: conflict: %w", m.ID, err)
				}
			}
		case syncproto.StatusRejected:
			if _, err := tx.Exec(ctx, `INSERT INTO rejected (id, collection, record_id, body, code, message, rejected_at)
				SELECT id, collection, record_id, body, ?, ?, ? FROM outbox WHERE id = ? ON CONFLICT DO NOTHING`,
				string(r.Code), r.Message, now, m.ID); err != nil {
				return nil, fmt.Errorf("result %s: keep rejected: %w", m.ID, err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = ?`, m.ID); err != nil {
				return nil, fmt.Errorf("result %s: %w", m.ID, err)
			}
			c.log.Warn("write refused by the server", "mutation", m.ID, "code", r.Code)
			recomp = appendKey(recomp, key)
		default:
			return nil, syncproto.Errorf(syncproto.CodeBadMessage, "result %s: unknown status %q", m.ID, r.Status)
		}
		touched = appendKey(touched, key)
	}
	for _, k := range recomp {
		if err := recompute(ctx, tx, k.Collection, k.ID, nil); err != nil {
			return nil, err
		}
	}
	return touched, nil
}

// pendingAfter returns up to n queued writes the server has not applied
// yet that come after outbox position after, oldest first, and the position
// of the last one.
func (c *Client) pendingAfter(ctx context.Context, after int64, n int) ([]syncproto.Mutation, int64, error) {
	rows, err := c.db.Reader.QueryContext(ctx, pendingQuery, after, n)
	return scanPending(rows, err)
}

// pendingTx returns every queued write the server has not applied, inside a
// transaction.
func (c *Client) pendingTx(ctx context.Context, tx *sqlitedb.Tx) ([]syncproto.Mutation, error) {
	rows, err := tx.Query(ctx, pendingQuery, 0, -1)
	muts, _, err := scanPending(rows, err)
	return muts, err
}

// maxPushBytes bounds the mutations in one push, well under the frame limit.
const maxPushBytes = syncproto.MaxFrameBytes / 4

const pendingQuery = `SELECT seq, body FROM outbox WHERE acked_seq IS NULL AND seq > ? ORDER BY seq LIMIT ?`

func scanPending(rows *sql.Rows, err error) ([]syncproto.Mutation, int64, error) {
	if err != nil {
		return nil, 0, fmt.Errorf("outbox: %w", err)
	}
	defer rows.Close()
	var (
		out  []syncproto.Mutation
		last int64
	)
	size := 0
	for rows.Next() {
		var body []byte
		var seq int64
		if err := rows.Scan(&seq, &body); err != nil {
			return nil, 0, fmt.Errorf("outbox: %w", err)
		}
		if size += len(body); size > maxPushBytes && len(out) > 0 {
			break // the rest goes in the next push, so a push always fits a frame
		}
		last = seq
		var m syncproto.Mutation
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, 0, fmt.Errorf("outbox: %w", err)
		}
		out = append(out, m)
	}
	return out, last, rows.Err()
}

// cursors returns the replica's cursor per scope.
func (c *Client) cursors(ctx context.Context) (map[string]int64, error) {
	rows, err := c.db.Reader.QueryContext(ctx, `SELECT scope, seq FROM cursors`)
	if err != nil {
		return nil, fmt.Errorf("cursors: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var scope string
		var seq int64
		if err := rows.Scan(&scope, &seq); err != nil {
			return nil, fmt.Errorf("cursors: %w", err)
		}
		out[scope] = seq
	}
	return out, rows.Err()
}

func appendKey(keys []RecordKey, k RecordKey) []RecordKey {
	if slices.Contains(keys, k) {
		return keys
	}
	return append(keys, k)
}
