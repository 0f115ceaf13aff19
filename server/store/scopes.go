package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

// Committed is a change as the hub needs it: the record's new state, the
// scopes it is in now (besides "all") and the scopes it just left.
type Committed struct {
	syncproto.Change
	Scopes []string
	Left   []string
	// Derived marks a person who entered or left a course's register
	// because an enrolment changed: the person's record did not change,
	// so devices holding "all" have it already.
	Derived bool
}

// joinKeys gives a record's scopes in the form records.scopes holds them:
// sorted, separated by spaces (scope keys hold none: ids are ValidIDs).
func joinKeys(keys []string) string { return strings.Join(keys, " ") }

// splitKeys reads records.scopes.
func splitKeys(s string) []string { return strings.Fields(s) }

// keysNow returns the scopes a record is in after a change of its own: its
// own (scope.Keys; those it had if its fields name none, as when a delete
// raced with an edit) and, for a person, the registers of the courses they
// are enrolled on — those they had, which only enrolments change, or for a
// new or revived intake form those its enrolments give it now. A deleted
// record keeps the scopes it had, so its tombstone reaches the devices that
// held it.
func (s *Store) keysNow(ctx context.Context, tx *sqlitedb.Tx, collection, id string, rec syncproto.Record, had []string, wasDeleted bool) ([]string, error) {
	if !rec.Exists() {
		return had, nil
	}
	keys := ownKeys(collection, id, rec, had)
	if collection == records.Persons {
		if len(had) > 0 && !wasDeleted {
			// Registers change with enrolments (registersChanged), not
			// with the person's own fields: keep those the person has.
			for _, k := range had {
				if !scope.Writable(k) {
					keys = append(keys, k)
				}
			}
		} else if _, ok := s.enrolled[id]; ok {
			// A new intake form of a person enrolled already, or a deleted
			// one brought back, whose enrolments may have changed meanwhile.
			regs, err := registersOf(ctx, tx, id)
			if err != nil {
				return nil, err
			}
			keys = append(keys, regs...)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// loadEnrolled fills s.enrolled with every person an enrolment names.
func (s *Store) loadEnrolled(ctx context.Context) error {
	s.enrolled = map[string]struct{}{}
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT DISTINCT json_extract(data, '$.person_id') FROM records
		WHERE collection = 'enrolments' AND json_type(data, '$.person_id') = 'text'`)
	if err != nil {
		return fmt.Errorf("enrolled persons: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("enrolled persons: %w", err)
		}
		s.enrolled[id] = struct{}{}
	}
	return rows.Err()
}

// noteEnrolled remembers that an enrolment names a person, so that their
// intake form, if it arrives later, looks for its registers.
func (s *Store) noteEnrolled(rec syncproto.Record) {
	var pid string
	if raw, ok := rec.Data["person_id"]; ok && json.Unmarshal(raw, &pid) == nil && pid != "" {
		s.enrolled[pid] = struct{}{}
	}
}

// seesPerson reports whether a holder of held sees the person an
// enrolment's fields name.
func (s *Store) seesPerson(ctx context.Context, tx *sqlitedb.Tx, held []string, enrolment map[string]json.RawMessage) (bool, error) {
	if slices.Contains(held, scope.All) {
		return true, nil
	}
	var pid string
	if json.Unmarshal(enrolment["person_id"], &pid) != nil || pid == "" {
		return false, nil
	}
	var keys string
	err := tx.QueryRow(ctx, `SELECT scopes FROM records WHERE `+byKey, records.Persons, pid).Scan(&keys)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("person %s: %w", pid, err)
	}
	return len(scope.Visible(held, splitKeys(keys))) > 0, nil
}

// ownKeys returns the scopes a record's own fields put it in; if they name
// none any more (a delete raced with an edit and only the edit's fields
// survived), the record stays in those it had.
func ownKeys(collection, id string, rec syncproto.Record, had []string) []string {
	keys := scope.Keys(collection, id, rec.Data)
	if len(keys) == 0 {
		for _, k := range had {
			if scope.Writable(k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// registersOf returns the register scopes of a person's active enrolments.
func registersOf(ctx context.Context, tx *sqlitedb.Tx, personID string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT data FROM records
		WHERE collection = 'enrolments' AND json_extract(data, '$.person_id') = ?`, personID)
	if err != nil {
		return nil, fmt.Errorf("registers of %s: %w", personID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("registers of %s: %w", personID, err)
		}
		var e records.Enrolment
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("registers of %s: %w", personID, err)
		}
		if e.CourseID != "" && e.Status != "withdrawn" {
			out = append(out, scope.Register(e.CourseID))
		}
	}
	return out, rows.Err()
}

// setKeys moves a record from the scopes had to the scopes now, at seq:
// entries for new scopes, exits from lost ones. changed says the record
// itself changed at seq, so every scope it stays in must serve it again.
func setKeys(ctx context.Context, tx *sqlitedb.Tx, rid int64, had, now []string, seq int64, changed bool) error {
	for _, k := range now {
		if slices.Contains(had, k) {
			if changed {
				if _, err := tx.Exec(ctx, `UPDATE record_scopes SET seq = ? WHERE scope = ? AND rid = ?`, seq, k, rid); err != nil {
					return fmt.Errorf("scopes of record %d: %w", rid, err)
				}
			}
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO record_scopes (scope, rid, seq) VALUES (?, ?, ?)
			ON CONFLICT (scope, rid) DO UPDATE SET seq = excluded.seq`, k, rid, seq); err != nil {
			return fmt.Errorf("scopes of record %d: %w", rid, err)
		}
	}
	for _, k := range left(had, now) {
		if _, err := tx.Exec(ctx, `DELETE FROM record_scopes WHERE scope = ? AND rid = ?`, k, rid); err != nil {
			return fmt.Errorf("scopes of record %d: %w", rid, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO scope_exits (scope, seq, rid) VALUES (?, ?, ?)`, k, seq, rid); err != nil {
			return fmt.Errorf("scopes of record %d: %w", rid, err)
		}
	}
	return nil
}

// left returns the scopes of had that now lacks.
func left(had, now []string) []string {
	var out []string
	for _, k := range had {
		if !slices.Contains(now, k) {
			out = append(out, k)
		}
	}
	return out
}

// registersChanged puts the persons an enrolment names, before and after
// a change at seq, in the registers their enrolments now give them, and
// returns those whose registers changed, as derived changes for the hub.
func registersChanged(ctx context.Context, tx *sqlitedb.Tx, keys map[int64][]string, before, after syncproto.Record, seq int64) ([]Committed, error) {
	var persons []string
	for _, rec := range []syncproto.Record{before, after} {
		var pid string
		if raw, ok := rec.Data["person_id"]; ok && json.Unmarshal(raw, &pid) == nil && pid != "" && !slices.Contains(persons, pid) {
			persons = append(persons, pid)
		}
	}
	var out []Committed
	for _, pid := range persons {
		_, p, err := scanRecord(tx.QueryRow(ctx, `SELECT `+recordColumns+` FROM records WHERE `+byKey,
			records.Persons, pid))
		if errors.Is(err, sql.ErrNoRows) {
			continue // enrolled before their intake form arrived: it will find its registers then
		}
		if err != nil {
			return nil, fmt.Errorf("registers of %s: %w", pid, err)
		}
		had, ok := keys[p.rid]
		if !ok {
			had = p.keys
		}
		now := had
		if p.rec.Exists() { // a deleted person keeps the scopes they had
			regs, err := registersOf(ctx, tx, pid)
			if err != nil {
				return nil, err
			}
			now = append(ownKeys(records.Persons, pid, p.rec, had), regs...)
			slices.Sort(now)
			now = slices.Compact(now)
		}
		keys[p.rid] = now
		if slices.Equal(had, now) {
			continue
		}
		if err := setKeys(ctx, tx, p.rid, had, now, seq, false); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE records SET scopes = ? WHERE rid = ?`, joinKeys(now), p.rid); err != nil {
			return nil, fmt.Errorf("registers of %s: %w", pid, err)
		}
		out = append(out, Committed{Change: syncproto.NewChange(records.Persons, pid, seq, p.rec),
			Scopes: now, Left: left(had, now), Derived: true})
	}
	return out, nil
}

// pullScoped serves the scopes held one after the other, each from its
// cursor: the records that entered or changed in the scope, and those that
// left it — as gone, unless another scope held still shows them. Each
// change says through which of the scopes held the record is seen; seen
// only through registers, a person shows only their names. A scope read to
// the end gets the snapshot's sequence as its cursor, so a device that is
// caught up can go live.
func (s *Store) pullScoped(ctx context.Context, held []string, cursors map[string]int64, limit int) (*syncproto.Page, error) {
	sqlTx, err := s.db.Reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	defer sqlTx.Rollback()
	tx := sqlitedb.NewTx(sqlTx)
	defer tx.Close()
	snapshot, err := s.durableSnapshot(ctx, sqlTx)
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	page := &syncproto.Page{Changes: []syncproto.Change{}, Cursors: make(map[string]int64, len(held))}
	size := 0
	for _, k := range slices.Sorted(slices.Values(held)) {
		after := cursors[k]
		page.Cursors[k] = after
		if after >= snapshot {
			continue
		}
		room := limit - len(page.Changes)
		if room <= 0 || size > syncproto.MaxPageBytes {
			page.More = true
			continue
		}
		items, more, err := scopeItems(ctx, tx, k, after, room)
		if err != nil {
			return nil, fmt.Errorf("pull %s after %d: %w", k, after, err)
		}
		for _, it := range items {
			if size > syncproto.MaxPageBytes {
				more = true
				break
			}
			after = it.Seq
			seen := scope.Visible(held, it.keys)
			switch {
			case it.exit && len(seen) > 0:
				continue // left this scope, still seen through another
			case it.exit:
				it.Change = syncproto.Change{Collection: it.Collection, ID: it.ID, Seq: it.Seq, Gone: true}
			default:
				if it.Change, err = scope.Show(it.Change, seen); err != nil {
					return nil, fmt.Errorf("pull %s: %w", k, err)
				}
			}
			page.Changes = append(page.Changes, it.Change)
			size += len(it.Data) + len(it.Stamps) + len(it.ID) + 64
		}
		if more {
			page.Cursors[k] = after
			page.More = true
		} else {
			page.Cursors[k] = snapshot
		}
	}
	return page, nil
}

// scopeItem is a record entering or changing in a scope, or leaving it.
type scopeItem struct {
	syncproto.Change
	keys []string // the scopes the record is in now
	exit bool
}

// scopeItems returns up to n of a scope's entries and exits after seq, in
// sequence order, and whether more follow.
func scopeItems(ctx context.Context, tx *sqlitedb.Tx, k string, after int64, n int) ([]scopeItem, bool, error) {
	var entries, exits []scopeItem
	rows, err := tx.Query(ctx, `SELECT s.seq, r.scopes, r.collection, r.id, r.data, r.stamps, r.deleted
		FROM record_scopes s JOIN records r ON r.rid = s.rid WHERE s.scope = ? AND s.seq > ? ORDER BY s.seq LIMIT ?`, k, after, n+1)
	if err != nil {
		return nil, false, err
	}
	for rows.Next() {
		var it scopeItem
		var data, stamps []byte
		var deleted, keys string
		if err := rows.Scan(&it.Seq, &keys, &it.Collection, &it.ID, &data, &stamps, &deleted); err != nil {
			rows.Close()
			return nil, false, err
		}
		it.keys = splitKeys(keys)
		it.Data, it.Stamps = data, stamps
		if it.Deleted, err = syncproto.ParseStamp(deleted); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("record %s/%s: %w", it.Collection, it.ID, err)
		}
		entries = append(entries, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	rows, err = tx.Query(ctx, `SELECT e.seq, r.scopes, r.collection, r.id FROM scope_exits e JOIN records r ON r.rid = e.rid
		WHERE e.scope = ? AND e.seq > ? ORDER BY e.seq LIMIT ?`, k, after, n+1)
	if err != nil {
		return nil, false, err
	}
	for rows.Next() {
		it := scopeItem{exit: true}
		var keys string
		if err := rows.Scan(&it.Seq, &keys, &it.Collection, &it.ID); err != nil {
			rows.Close()
			return nil, false, err
		}
		it.keys = splitKeys(keys)
		exits = append(exits, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	merged := append(entries, exits...)
	slices.SortStableFunc(merged, func(a, b scopeItem) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(merged) > n {
		return merged[:n], true, nil
	}
	return merged, false, nil
}
