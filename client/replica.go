package client

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

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
	return decodeOutbox(ctx, tx, `SELECT b.body FROM outbox o JOIN outbox_bodies b ON b.seq = o.seq
		WHERE o.collection = ? AND o.record_id = ? ORDER BY o.seq`, collection, id)
}

// decodeOutbox returns, in order, the queued writes whose bodies query
// selects.
func decodeOutbox(ctx context.Context, tx *sqlitedb.Tx, query string, args ...any) ([]syncproto.Mutation, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	defer rows.Close()
	var out []syncproto.Mutation
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		var m syncproto.Mutation
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
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
	seen := make([]syncproto.Stamp, 0, len(fields))
	for f := range fields {
		if s := visible.FieldStamp(f); !s.IsZero() {
			m.Base[f] = s
			seen = append(seen, s)
		}
	}
	m.Stamp = c.clock.NowAfter(seen...) // the write must order after what its writer saw
	if err := m.Validate(); err != nil {
		return fmt.Errorf("write %s/%s: %w: %w", m.Collection, m.Record, ErrInvalidWrite, err)
	}
	if c.opts.Schema != nil && m.Op == syncproto.OpPut {
		if err := c.opts.Schema.Check(m.Collection, m.Record, syncproto.Intent(visible, m), c.opts.Now()); err != nil {
			return fmt.Errorf("write %s/%s: %w: %w", m.Collection, m.Record, ErrInvalidWrite, err)
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", m.Collection, m.Record, err)
	}
	res, err := tx.Exec(ctx, `INSERT INTO outbox (id, collection, record_id, created_at) VALUES (?, ?, ?, ?)`,
		m.ID, m.Collection, m.Record, c.opts.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("write %s/%s: queue: %w", m.Collection, m.Record, err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("write %s/%s: queue: %w", m.Collection, m.Record, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox_bodies (seq, body) VALUES (?, ?)`, seq, body); err != nil {
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

// applyPages applies pages of changes from the server, each with the
// cursors that follow it, in order in the caller's transaction. A change
// older than the copy held is skipped, so pages and live changes may overlap
// or repeat.
func (c *Client) applyPages(ctx context.Context, tx *sqlitedb.Tx, pages ...*syncproto.Page) ([]RecordKey, error) {
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("apply page: %w", err)
	}

	n := 0
	for _, page := range pages {
		n += len(page.Changes)
	}
	changed := make([]RecordKey, 0, n)
	for _, page := range pages {
		if changed, err = c.applyChanges(ctx, tx, page, withPending, changed); err != nil {
			return nil, err
		}
	}
	return changed, nil
}

// applyChanges applies one page for applyPages, appending the keys of the
// records it changed to changed; withPending holds the keys of records with
// queued writes.
func (c *Client) applyChanges(ctx context.Context, tx *sqlitedb.Tx, page *syncproto.Page,
	withPending map[[2]string]bool, changed []RecordKey) ([]RecordKey, error) {
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
		// Every field needs a stamp, or later local writes to the record
		// could not be merged. A "*" default covers them all (the form
		// EncodeStamps writes); anything else is checked in full.
		if hasFields(ch.Data) && !bytes.Contains(ch.Stamps, []byte(`"*":`)) {
			if _, err := ch.Record(); err != nil {
				return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID, err)
			}
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
				if _, err := tx.Exec(ctx, `UPDATE replica_records SET scopes = ? WHERE collection = ? AND id = ?`,
					scopesOf(ch), ch.Collection, ch.ID); err != nil {
					return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID, err)
				}
				changed = append(changed, RecordKey{Collection: ch.Collection, ID: ch.ID})
				continue
			}
		}
		// One statement applies the change unless the replica already holds
		// this seq or a later one (pages and pushed changes may overlap).
		// Data and stamps are bound as bytes and cast to text by SQLite:
		// converting them to Go strings would copy every record once more.
		deleted := !hasFields(ch.Data)
		res, err := tx.Exec(ctx, `INSERT INTO replica_records (collection, id, data, deleted, seq, server_data, stamps, tombstone, scopes)
			VALUES (?, ?, CAST(? AS TEXT), ?, ?, NULL, CAST(? AS TEXT), ?, ?) ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data,
			deleted = excluded.deleted, seq = excluded.seq, server_data = NULL, stamps = excluded.stamps,
			tombstone = excluded.tombstone, scopes = excluded.scopes WHERE excluded.seq > replica_records.seq`, ch.Collection, ch.ID,
			[]byte(ch.Data), deleted, ch.Seq, []byte(ch.Stamps), ch.Deleted.String(), scopesOf(ch))
		if err != nil {
			return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil || n > 0 {
			changed = append(changed, RecordKey{Collection: ch.Collection, ID: ch.ID})
		} else if len(ch.Scopes) > 0 {
			// The same version through another scope (a course just
			// joined): it brings the full list of scopes showing it.
			if _, err := tx.Exec(ctx, `UPDATE replica_records SET scopes = ? WHERE collection = ? AND id = ? AND seq = ?`,
				scopesOf(ch), ch.Collection, ch.ID, ch.Seq); err != nil {
				return nil, fmt.Errorf("apply %s/%s: %w", ch.Collection, ch.ID, err)
			}
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

// scopesOf returns how the replica stores the scopes a change came through.
func scopesOf(ch *syncproto.Change) string {
	if len(ch.Scopes) == 0 {
		return "all"
	}
	return strings.Join(ch.Scopes, " ")
}

// dropLostScopes removes, when the session's scopes differ from the last
// session's, the cursors of scopes no longer held and the records seen only
// through them: a mediator moved off a site keeps nothing of it. Writes not
// yet sent stay queued (the server will refuse them, and they will be
// listed as rejected, not lost).
func (c *Client) dropLostScopes(ctx context.Context, tx *sqlitedb.Tx, held []string) error {
	joined := strings.Join(held, " ")
	var last string
	err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'scopes'`).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("scopes: %w", err)
	}
	if err == nil && last == joined {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT scope FROM cursors`)
	if err != nil {
		return fmt.Errorf("scopes: %w", err)
	}
	var lost []string
	for rows.Next() {
		var sc string
		if err := rows.Scan(&sc); err != nil {
			rows.Close()
			return fmt.Errorf("scopes: %w", err)
		}
		if !slices.Contains(held, sc) {
			lost = append(lost, sc)
		}
	}
	rows.Close()
	for _, sc := range lost {
		if _, err := tx.Exec(ctx, `DELETE FROM cursors WHERE scope = ?`, sc); err != nil {
			return fmt.Errorf("scopes: %w", err)
		}
	}
	rows, err = tx.Query(ctx, `SELECT collection, id, scopes FROM replica_records WHERE seq > 0`)
	if err != nil {
		return fmt.Errorf("scopes: %w", err)
	}
	var gone [][2]string
	for rows.Next() {
		var coll, id, scopes string
		if err := rows.Scan(&coll, &id, &scopes); err != nil {
			rows.Close()
			return fmt.Errorf("scopes: %w", err)
		}
		if !slices.ContainsFunc(strings.Fields(scopes), func(s string) bool { return slices.Contains(held, s) }) {
			gone = append(gone, [2]string{coll, id})
		}
	}
	rows.Close()
	for _, k := range gone {
		if err := c.forget(ctx, tx, k[0], k[1]); err != nil {
			return err
		}
	}
	if len(gone) > 0 || len(lost) > 0 {
		c.log.Info("scopes changed: removed what they no longer show", "records", len(gone), "scopes", lost)
	}
	return setMeta(ctx, tx, "scopes", joined)
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

// hasFields reports whether the JSON object b has any key: every key is a
// quoted string, so an object without a quote has none.
func hasFields(b []byte) bool { return bytes.IndexByte(b, '"') >= 0 }

// isObject reports whether b is a JSON object; b comes from a frame
// syncproto.Decode has already checked is valid JSON.
func isObject(b json.RawMessage) bool {
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}'
}

// queued is a write from the outbox as it is sent: its identity and its
// JSON body, which goes on the wire as it is stored.
type queued struct {
	seq                    int64 // the outbox row
	id, collection, record string
	body                   string
}

// applyResults records the server's answers to a push: applied writes wait
// for their echo, refused ones move to the rejected list, reported
// conflicts are kept.
func (c *Client) applyResults(ctx context.Context, tx *sqlitedb.Tx, sent []queued, results []syncproto.MutationResult) ([]RecordKey, error) {
	if len(results) != len(sent) {
		return nil, syncproto.Errorf(syncproto.CodeBadMessage, "push of %d answered with %d results", len(sent), len(results))
	}
	now := c.opts.Now().UnixMilli()
	var (
		touched = keySet{seen: make(map[RecordKey]bool, len(sent))}
		recomp  keySet
		acks    []any // outbox row and server seq of each applied write
	)
	for i, r := range results {
		m := sent[i]
		if r.ID != m.id {
			return nil, syncproto.Errorf(syncproto.CodeBadMessage, "result %d is for %s, want %s", i, r.ID, m.id)
		}
		key := RecordKey{Collection: m.collection, ID: m.record}
		touched.add(key)
		switch r.Status {
		case syncproto.StatusApplied, syncproto.StatusDuplicate:
			acks = append(acks, m.seq, r.Seq)
			if !r.Stamp.IsZero() { // the server re-stamped a write from a clock too far ahead
				if err := restampQueued(ctx, tx, m, r.Stamp); err != nil {
					return nil, err
				}
				recomp.add(key)
			}
			for _, cf := range r.Conflicts {
				body, err := json.Marshal(cf)
				if err != nil {
					return nil, err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO conflicts (mutation_id, collection, record_id, body, detected_at)
					VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, m.id, m.collection, m.record, body, now); err != nil {
					return nil, fmt.Errorf("result %s: conflict: %w", m.id, err)
				}
			}
		case syncproto.StatusRejected:
			fields, err := json.Marshal(r.Fields)
			if err != nil || r.Fields == nil {
				fields = []byte("[]")
			}
			if _, err := tx.Exec(ctx, `INSERT INTO rejected (id, collection, record_id, body, code, message, fields, rejected_at)
				SELECT o.id, o.collection, o.record_id, b.body, ?, ?, ?, ? FROM outbox o JOIN outbox_bodies b ON b.seq = o.seq
				WHERE o.id = ? ON CONFLICT DO NOTHING`,
				string(r.Code), r.Message, string(fields), now, m.id); err != nil {
				return nil, fmt.Errorf("result %s: keep rejected: %w", m.id, err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = ?`, m.id); err != nil {
				return nil, fmt.Errorf("result %s: %w", m.id, err)
			}
			c.log.Warn("write refused by the server", "mutation", m.id, "code", r.Code)
			recomp.add(key)
		default:
			return nil, syncproto.Errorf(syncproto.CodeBadMessage, "result %s: unknown status %q", m.id, r.Status)
		}
	}
	if err := acknowledge(ctx, tx, acks, &recomp); err != nil {
		return nil, err
	}
	for _, k := range recomp.keys {
		if err := recompute(ctx, tx, k.Collection, k.ID, nil); err != nil {
			return nil, err
		}
	}
	return touched.keys, nil
}

// acknowledge marks applied writes (pairs of outbox row and server seq) in
// one statement. A write stays in the overlay until the server's copy of
// its record includes it; where the replica already holds that copy (a
// duplicate, or the echo came first), the record is added to recomp so the
// write leaves the outbox now.
func acknowledge(ctx context.Context, tx *sqlitedb.Tx, acks []any, recomp *keySet) error {
	if len(acks) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox SET acked_seq = v.column2 FROM (VALUES `+sqlitedb.Placeholders(len(acks)/2, "(?, ?)")+`) AS v
		WHERE outbox.seq = v.column1`, acks...); err != nil {
		return fmt.Errorf("acknowledge %d writes: %w", len(acks)/2, err)
	}
	outboxRows := make([]any, 0, len(acks)/2)
	for i := 0; i < len(acks); i += 2 {
		outboxRows = append(outboxRows, acks[i])
	}
	rows, err := tx.Query(ctx, `SELECT o.collection, o.record_id FROM outbox o JOIN replica_records r
		ON r.collection = o.collection AND r.id = o.record_id
		WHERE o.seq IN (`+sqlitedb.Placeholders(len(outboxRows), "?")+`) AND r.seq >= o.acked_seq`, outboxRows...)
	if err != nil {
		return fmt.Errorf("acknowledge: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k RecordKey
		if err := rows.Scan(&k.Collection, &k.ID); err != nil {
			return fmt.Errorf("acknowledge: %w", err)
		}
		recomp.add(k)
	}
	return rows.Err()
}

// restampQueued gives a queued write the stamp the server applied it with.
func restampQueued(ctx context.Context, tx *sqlitedb.Tx, q queued, stamp syncproto.Stamp) error {
	var m syncproto.Mutation
	if err := json.Unmarshal([]byte(q.body), &m); err != nil {
		return fmt.Errorf("restamp %s: %w", q.id, err)
	}
	m.Stamp = stamp
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("restamp %s: %w", q.id, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox_bodies SET body = ? WHERE seq = ?`, body, q.seq); err != nil {
		return fmt.Errorf("restamp %s: %w", q.id, err)
	}
	return nil
}

// keySet is an ordered set of record keys.
type keySet struct {
	keys []RecordKey
	seen map[RecordKey]bool
}

func (s *keySet) add(k RecordKey) {
	if s.seen == nil {
		s.seen = make(map[RecordKey]bool)
	}
	if !s.seen[k] {
		s.seen[k] = true
		s.keys = append(s.keys, k)
	}
}

// pendingAfter returns up to n queued writes the server has not applied
// yet that come after outbox position after, oldest first, at most
// maxPushBytes of them, and the position of the last one.
func (c *Client) pendingAfter(ctx context.Context, after int64, n int) ([]queued, int64, error) {
	// The body is read as text: go-sqlite3 copies it out of SQLite once,
	// where a blob scanned into a []byte is copied twice.
	rows, err := c.db.Reader.QueryContext(ctx, `SELECT o.seq, o.id, o.collection, o.record_id, CAST(b.body AS TEXT)
		FROM outbox o JOIN outbox_bodies b ON b.seq = o.seq
		WHERE o.acked_seq IS NULL AND o.seq > ? ORDER BY o.seq LIMIT ?`, after, n)
	if err != nil {
		return nil, 0, fmt.Errorf("outbox: %w", err)
	}
	defer rows.Close()
	var (
		out  = make([]queued, 0, min(n, syncproto.MaxBatch))
		last int64
		size int
	)
	for rows.Next() {
		var q queued
		if err := rows.Scan(&q.seq, &q.id, &q.collection, &q.record, &q.body); err != nil {
			return nil, 0, fmt.Errorf("outbox: %w", err)
		}
		if size += len(q.body); size > maxPushBytes && len(out) > 0 {
			break // the rest goes in the next push, so a push always fits a frame
		}
		out, last = append(out, q), q.seq
	}
	return out, last, rows.Err()
}

// maxPushBytes bounds the mutations in one push, well under the frame limit.
const maxPushBytes = syncproto.MaxFrameBytes / 4

// pendingTx returns, decoded, every queued write the server has not applied.
func (c *Client) pendingTx(ctx context.Context, tx *sqlitedb.Tx) ([]syncproto.Mutation, error) {
	return decodeOutbox(ctx, tx, `SELECT b.body FROM outbox o JOIN outbox_bodies b ON b.seq = o.seq
		WHERE o.acked_seq IS NULL ORDER BY o.seq`)
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
