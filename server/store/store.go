// Package store is the server's durable state in SQLite: records with their
// field stamps, the append-only mutation log, conflicts, users and devices.
//
// Concurrency: any number of goroutines may call a Store. Writes are
// serialised (one writer connection, one mutex); reads run in parallel on a
// read pool and see committed snapshots. DESIGN.md states the transaction
// boundaries and why.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultPageSize is the number of changes in a page when a pull names none.
const DefaultPageSize = 1000

// Actor is who makes a write: the authenticated user and device, and the
// scopes the user holds (package scope), which decide what they may change.
type Actor struct {
	User   string
	Device string // device id
	Node   string // the device's replica node
	Scopes []string
}

// Options configure a Store.
type Options struct {
	// Now is the server's physical clock; nil means time.Now.
	Now func() time.Time
	// OnCommit, if set, is called once each commit that changed records is
	// durable, with their new states and scopes in sequence order. Calls
	// are serialised and come in commit order; OnCommit must not block or
	// call the Store's writers.
	OnCommit func([]Committed)
	// Schema, if set, checks every put before it is applied: a put whose
	// record would break its rules is rejected with CodeInvalid and the
	// fields at fault. Ponte's server sets records.Schema.
	Schema syncproto.Schema
}

// Store is the server's SQLite store. Create it with Open.
type Store struct {
	db     *sqlitedb.DB
	clock  *syncproto.Clock
	now    func() time.Time
	sync   *syncer // makes pushed batches durable (durable.go)
	schema syncproto.Schema

	mu  sync.Mutex // serialises writes; guards seq and enrolled
	seq int64      // last assigned sequence
	// enrolled holds the persons some enrolment names, so a new intake form
	// looks for its registers only when it may have some. It may hold ids
	// of enrolments whose transaction failed: that costs one query.
	enrolled map[string]struct{}

	resolveMu sync.Mutex // one conflict decision at a time
}

// Open opens or creates the store at path and brings its schema up to date.
// A pushed batch is reported applied only once its commit is synced to
// disk (see Apply), so an acknowledged write survives power loss; other
// commits are synced before they return (synchronous=FULL).
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, sqlitedb.SyncFull)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := db.Migrate(ctx, migrations, "migrations"); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{db: db, now: opts.Now, schema: opts.Schema}
	if s.now == nil {
		s.now = time.Now
	}
	node, err := s.serverNode(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.clock = syncproto.NewClock(node, s.now)
	if err := s.loadEnrolled(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := db.Writer.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM records`).Scan(&s.seq); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: read sequence: %w", err)
	}
	var last string // the clock as the last commit left it
	if err := db.Writer.QueryRowContext(ctx, `SELECT coalesce((SELECT value FROM meta WHERE key = 'clock'), '')`).Scan(&last); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: read clock: %w", err)
	}
	if st, err := syncproto.ParseStamp(last); err == nil && st.Wall <= s.now().Add(syncproto.MaxFuture).UnixMilli() {
		s.clock.Restore(st)
	}
	// What the WAL holds counts as durable from here on: make it so, in
	// case the last process ended before syncing its last commits.
	if err := db.SyncWAL(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.sync = newSyncer(db.SyncWAL, s.seq, opts.OnCommit)
	return s, nil
}

// serverNode returns the server's node identifier, creating it on first use.
func (s *Store) serverNode(ctx context.Context) (string, error) {
	node := syncproto.NewNode()
	if _, err := s.db.Writer.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('node', ?) ON CONFLICT DO NOTHING`, node); err != nil {
		return "", fmt.Errorf("server node: %w", err)
	}
	if err := s.db.Writer.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'node'`).Scan(&node); err != nil {
		return "", fmt.Errorf("server node: %w", err)
	}
	return node, nil
}

// Close closes the database. Writes in progress finish first, and are
// synced.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sync.close()
	return s.db.Close()
}

// Clock returns the server's hybrid logical clock.
func (s *Store) Clock() *syncproto.Clock { return s.clock }

// Err returns why the store can no longer make writes durable (an fsync
// of its log failed), or nil. Once set it stays: see durable.go.
func (s *Store) Err() error { return s.sync.failed() }

// LastSeq returns the sequence of the latest durable change.
func (s *Store) LastSeq() int64 { return s.sync.durable.Load() }

// Apply applies a batch of mutations from actor in one transaction and
// returns one result per mutation, in order, once the transaction is durable.
// A mutation already applied (same ID) is answered StatusDuplicate with the
// seq it was applied at; an invalid one is answered StatusRejected and does
// not stop the rest of the batch. An error means nothing was applied.
func (s *Store) Apply(ctx context.Context, actor Actor, muts []syncproto.Mutation) ([]syncproto.MutationResult, error) {
	a, err := s.ApplyNoWait(ctx, actor, muts)
	if err != nil {
		return nil, err
	}
	if err := a.Wait(ctx); err != nil {
		return nil, fmt.Errorf("apply batch of %d: %w", len(muts), err)
	}
	return a.Results, nil
}

// Applied is a batch committed by ApplyNoWait.
type Applied struct {
	Results []syncproto.MutationResult
	commit  uint64
	sync    *syncer
}

// Wait returns once the batch is durable, or the error that stops it ever
// being (the disk failed to sync, or ctx is done).
func (a *Applied) Wait(ctx context.Context) error { return a.sync.waitCommit(ctx, a.commit) }

// ApplyNoWait is Apply without waiting for the commit to reach the disk:
// it returns once the batch has committed, so the caller can apply its next
// batch meanwhile. Until Wait returns nil, the caller must tell nobody the
// results: the batch may still be lost to a power cut.
func (s *Store) ApplyNoWait(ctx context.Context, actor Actor, muts []syncproto.Mutation) (*Applied, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync.failed(); err != nil { // nothing could be acknowledged
		return nil, fmt.Errorf("apply batch of %d: %w", len(muts), err)
	}
	startSeq := s.seq
	results, changes, err := s.apply(ctx, actor, muts)
	if err != nil {
		s.seq = startSeq
		return nil, fmt.Errorf("apply batch of %d: %w", len(muts), err)
	}
	n := s.sync.commit(s.seq, changes)
	return &Applied{Results: results, commit: n, sync: s.sync}, nil
}

func (s *Store) apply(ctx context.Context, actor Actor, muts []syncproto.Mutation) ([]syncproto.MutationResult, []Committed, error) {
	tx, err := s.db.BeginWrite(ctx, sqlitedb.SyncNormal) // synced by s.sync
	if err != nil {
		return nil, nil, err
	}
	defer tx.Close()
	defer tx.Rollback()
	applied, err := appliedBefore(ctx, tx, muts)
	if err != nil {
		return nil, nil, err
	}
	recs, err := loadRecords(ctx, tx, muts)
	if err != nil {
		return nil, nil, err
	}
	keys := make(map[int64][]string, len(recs)) // the scopes of each record by rid, as the batch goes
	for _, cur := range recs {
		keys[cur.rid] = cur.keys
	}

	physical := s.now()
	now := physical.UnixMilli()
	invalid := make([]error, len(muts))
	for i := range muts {
		invalid[i] = muts[i].Validate()
	}
	judge := s.judgeAhead(muts, invalid, recs, applied, physical)
	defer judge.close()
	results := make([]syncproto.MutationResult, len(muts))
	changed := make(map[recordKey]int, len(muts)) // record → index in changes
	changes := make([]Committed, 0, len(muts))
	for i := range muts {
		m := &muts[i]
		res := &results[i]
		res.ID = m.ID
		verdict, early := judge.get(i) // read for every i, to keep in step
		if prev, ok := applied[m.ID]; ok {
			res.Status, res.Seq = syncproto.StatusDuplicate, prev.seq
			if prev.stamp != m.Stamp {
				res.Stamp = prev.stamp // it was re-stamped when applied
			}
			// The first answer may never have arrived: repeat its conflicts.
			if res.Conflicts, err = conflictsOf(ctx, tx, m.ID); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err := invalid[i]; err != nil {
			res.Status, res.Code, res.Message = syncproto.StatusRejected, syncproto.ErrorCode(err), err.Error()
			continue
		}
		if m.Stamp.Node != actor.Node {
			res.Status, res.Code = syncproto.StatusRejected, syncproto.CodeInvalid
			res.Message = "stamp node is not the writing device's node"
			continue
		}
		key := recordKey{m.Collection, m.Record}
		cur := recs[key]
		if !early {
			verdict = s.judge(m, cur.rec, physical)
		}
		// A record is changed by those who may change it as it stands; a
		// new one by those who may change it as it would be.
		writeKeys := keys[cur.rid]
		if cur.rid == 0 {
			writeKeys = verdict.keys
		}
		allowed := scope.CanWrite(actor.Scopes, writeKeys)
		if allowed && m.Collection == records.Attendance && m.Op == syncproto.OpPut && !slices.Contains(actor.Scopes, scope.All) {
			// A mark says who made it: a teacher marks in their own name.
			var by string
			if raw, ok := m.Data["marked_by"]; ok && (json.Unmarshal(raw, &by) != nil || by != actor.User) {
				allowed = false
			}
		}
		if allowed && cur.rid == 0 && m.Collection == records.Enrolments {
			// Enrolling someone puts their name in a register: only for a
			// person the writer already sees.
			if allowed, err = s.seesPerson(ctx, tx, actor.Scopes, syncproto.Intent(cur.rec, m)); err != nil {
				return nil, nil, err
			}
		}
		if !allowed {
			res.Status, res.Code = syncproto.StatusRejected, syncproto.CodeForbidden
			res.Message = fmt.Sprintf("%s/%s is outside the scopes of %s", m.Collection, m.Record, actor.User)
			continue
		}
		if err := verdict.err; err != nil {
			res.Status, res.Code, res.Message = syncproto.StatusRejected, syncproto.ErrorCode(err), err.Error()
			var e *syncproto.Error
			if errors.As(err, &e) {
				res.Fields = e.Fields
			}
			continue
		}
		if stamp, replaced := s.clock.Admit(m.Stamp); replaced {
			m.Stamp, res.Stamp = stamp, stamp
		}
		next, isChanged, conflicts := syncproto.Apply(cur.rec, *m)
		seq := cur.seq
		// Data is bound as bytes and cast to text by SQLite (SQL's JSON
		// functions read a blob as binary JSON): a Go string would copy it.
		mdata := m.EncodedData() // the mutation's data as logged; nil for a delete
		if isChanged {
			ch := syncproto.Change{Collection: m.Collection, ID: m.Record, Seq: s.seq + 1,
				Data: mdata, Stamps: syncproto.EncodeStamps(next.Stamps), Deleted: next.Deleted}
			if !sameFields(next, m) {
				ch.Data = syncproto.EncodeData(next.Data)
			}
			if len(ch.Data) > syncproto.MaxRecordBytes {
				res.Stamp = syncproto.Stamp{}
				res.Status, res.Code = syncproto.StatusRejected, syncproto.CodeTooLarge
				res.Message = fmt.Sprintf("record would hold %d bytes, limit %d", len(ch.Data), syncproto.MaxRecordBytes)
				continue
			}
			s.seq++
			seq = s.seq
			isNew := cur.rid == 0
			if isNew {
				cur.rid = seq // a new record is numbered by its first change
			}
			had := keys[cur.rid]
			if m.Collection == records.Enrolments {
				s.noteEnrolled(next)
			}
			now, err := s.keysNow(ctx, tx, m.Collection, m.Record, next, had, cur.rid != 0 && !cur.rec.Exists())
			if err != nil {
				return nil, nil, err
			}
			// Only this loop writes records, and it knows whether one is
			// stored (recs): that keeps (collection, id) unique.
			if isNew {
				_, err = tx.Exec(ctx, `INSERT INTO records (seq, rid, collection, id, key_hash, data, stamps, deleted, scopes)
					VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT), CAST(? AS TEXT), ?, ?)`, seq, cur.rid, m.Collection, m.Record,
					sqlitedb.KeyHash(m.Collection, m.Record), []byte(ch.Data), []byte(ch.Stamps), ch.Deleted.String(), joinKeys(now))
			} else {
				_, err = tx.Exec(ctx, `UPDATE records SET seq = ?, data = CAST(? AS TEXT), stamps = CAST(? AS TEXT), deleted = ?,
					scopes = ? WHERE rid = ?`, seq, []byte(ch.Data), []byte(ch.Stamps), ch.Deleted.String(), joinKeys(now), cur.rid)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("mutation %s: store record: %w", m.ID, err)
			}
			recs[key] = current{rec: next, seq: seq, rid: cur.rid, keys: now}
			if err := setKeys(ctx, tx, cur.rid, had, now, seq, true); err != nil {
				return nil, nil, err
			}
			keys[cur.rid] = now
			c := Committed{Change: ch, Scopes: now, Left: left(had, now)}
			if j, ok := changed[key]; ok {
				c.Left = left(append(changes[j].Left, c.Left...), now)
				changes[j] = c
			} else {
				changed[key] = len(changes)
				changes = append(changes, c)
			}
			if m.Collection == records.Enrolments {
				derived, err := registersChanged(ctx, tx, keys, cur.rec, next, seq)
				if err != nil {
					return nil, nil, fmt.Errorf("mutation %s: %w", m.ID, err)
				}
				changes = append(changes, derived...)
			}
		}
		if cur.rid == 0 { // Apply always changes a record not stored yet
			return nil, nil, fmt.Errorf("mutation %s: %s/%s left no record", m.ID, m.Collection, m.Record)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mutations (id, seq, record, op, data, stamp, user_name, device_id, received_at)
			VALUES (?, ?, ?, ?, CAST(? AS TEXT), ?, ?, ?, ?)`, m.ID, seq, cur.rid, string(m.Op), []byte(mdata),
			m.Stamp.String(), actor.User, actor.Device, now); err != nil {
			return nil, nil, fmt.Errorf("mutation %s: log: %w", m.ID, err)
		}
		applied[m.ID] = appliedAt{seq: seq, stamp: m.Stamp}
		for _, c := range conflicts {
			if _, err := tx.Exec(ctx, `INSERT INTO conflicts (collection, record_id, field, winner_value, winner_deleted,
				winner_stamp, loser_value, loser_deleted, loser_stamp, mutation_id, detected_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, m.Collection, m.Record, c.Field,
				nullRaw(c.Winner.Value), c.Winner.Deleted, c.Winner.Stamp.String(),
				nullRaw(c.Loser.Value), c.Loser.Deleted, c.Loser.Stamp.String(), m.ID, now); err != nil {
				return nil, nil, fmt.Errorf("mutation %s: record conflict: %w", m.ID, err)
			}
		}
		res.Status, res.Seq, res.Conflicts = syncproto.StatusApplied, seq, conflicts
	}
	// The clock's memory goes with the batch, so a restarted server stamps
	// after everything it stored.
	if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('clock', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, s.clock.Last().String()); err != nil {
		return nil, nil, fmt.Errorf("save clock: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("commit: %w", err)
	}
	// Keep sequence order for the broadcast even when a record changed twice.
	slices.SortStableFunc(changes, func(a, b Committed) int { return cmp.Compare(a.Seq, b.Seq) })
	return results, changes, nil
}

type recordKey struct{ collection, id string }

// sameFields reports whether rec holds exactly the fields m wrote, so its
// encoded data is m's (a new record, or one m rewrote whole).
func sameFields(rec syncproto.Record, m *syncproto.Mutation) bool {
	if m.Op != syncproto.OpPut || len(rec.Data) != len(m.Data) {
		return false
	}
	for f := range m.Data {
		if rec.Stamps[f] != m.Stamp {
			return false
		}
	}
	return true
}

// conflictsOf returns the conflicts a mutation met when it was applied.
func conflictsOf(ctx context.Context, tx *sqlitedb.Tx, mutation string) ([]syncproto.Conflict, error) {
	rows, err := tx.Query(ctx, `SELECT `+conflictColumns+` FROM conflicts WHERE mutation_id = ? ORDER BY id`, mutation)
	if err != nil {
		return nil, fmt.Errorf("conflicts of %s: %w", mutation, err)
	}
	defer rows.Close()
	var out []syncproto.Conflict
	for rows.Next() {
		c, err := scanConflict(rows)
		if err != nil {
			return nil, fmt.Errorf("conflicts of %s: %w", mutation, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

type current struct {
	rec  syncproto.Record
	seq  int64
	rid  int64    // 0 for a record not stored yet
	keys []string // the scopes it is in besides "all"
}

type appliedAt struct {
	seq   int64
	stamp syncproto.Stamp
}

// appliedBefore returns the mutations of the batch the log already holds,
// in one query.
func appliedBefore(ctx context.Context, tx *sqlitedb.Tx, muts []syncproto.Mutation) (map[string]appliedAt, error) {
	ids := make([]any, len(muts))
	for i, m := range muts {
		ids[i] = m.ID
	}
	rows, err := tx.Query(ctx, `SELECT id, seq, stamp FROM mutations WHERE id IN (`+sqlitedb.Placeholders(len(ids), "?")+`)`, ids...)
	if err != nil {
		return nil, fmt.Errorf("look up applied mutations: %w", err)
	}
	defer rows.Close()
	out := make(map[string]appliedAt, len(muts))
	for rows.Next() {
		var id, stamp string
		var a appliedAt
		if err := rows.Scan(&id, &a.seq, &stamp); err != nil {
			return nil, fmt.Errorf("look up applied mutations: %w", err)
		}
		if a.stamp, err = syncproto.ParseStamp(stamp); err != nil {
			return nil, fmt.Errorf("look up applied mutations: %s: %w", id, err)
		}
		out[id] = a
	}
	return out, rows.Err()
}

// loadRecords returns the current state of every record the batch touches,
// in one query; records never written are absent.
func loadRecords(ctx context.Context, tx *sqlitedb.Tx, muts []syncproto.Mutation) (map[recordKey]current, error) {
	args := make([]any, len(muts))
	for i, m := range muts {
		args[i] = sqlitedb.KeyHash(m.Collection, m.Record)
	}
	rows, err := tx.Query(ctx, `SELECT `+recordColumns+` FROM records
		WHERE key_hash IN (`+sqlitedb.Placeholders(len(muts), "?")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("load records: %w", err)
	}
	defer rows.Close()
	out := make(map[recordKey]current, len(muts))
	for rows.Next() {
		k, cur, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("load records: %w", err)
		}
		out[k] = cur // a record that only shares a hash with one asked for is not looked up
	}
	return out, rows.Err()
}

func nullRaw(v json.RawMessage) any {
	if v == nil {
		return nil
	}
	return string(v)
}

// byKey is the condition that finds the record of collection ?1 and id ?2
// through records_by_hash (see migrations/0005_key_hash.sql). The unary +
// keeps SQLite from choosing records_by_collection instead, which would
// read the whole collection.
const byKey = `key_hash = key_hash(?1, ?2) AND +collection = ?1 AND id = ?2`

// recordColumns are the columns scanRecord reads.
const recordColumns = `collection, id, seq, rid, data, stamps, deleted, scopes`

// scanRecord decodes a row of recordColumns.
func scanRecord(row interface{ Scan(...any) error }) (recordKey, current, error) {
	var (
		k            recordKey
		cur          current
		deleted, sc  string
		data, stamps []byte
	)
	if err := row.Scan(&k.collection, &k.id, &cur.seq, &cur.rid, &data, &stamps, &deleted, &sc); err != nil {
		return k, cur, err
	}
	cur.keys = splitKeys(sc)
	ch := syncproto.Change{Collection: k.collection, ID: k.id, Data: data, Stamps: stamps}
	var err error
	if ch.Deleted, err = syncproto.ParseStamp(deleted); err != nil {
		return k, cur, fmt.Errorf("record %s/%s: %w", k.collection, k.id, err)
	}
	if cur.rec, err = ch.Record(); err != nil {
		return k, cur, fmt.Errorf("record %s/%s: %w", k.collection, k.id, err)
	}
	return k, cur, nil
}

// Get returns the current state of a record and its seq; a record never
// written is the zero Record with seq 0.
func (s *Store) Get(ctx context.Context, collection, id string) (syncproto.Record, int64, error) {
	_, cur, err := scanRecord(s.db.Reader.QueryRowContext(ctx,
		`SELECT `+recordColumns+` FROM records WHERE `+byKey, collection, id))
	if errors.Is(err, sql.ErrNoRows) {
		return syncproto.Record{}, 0, nil
	}
	if err != nil {
		return syncproto.Record{}, 0, fmt.Errorf("get %s/%s: %w", collection, id, err)
	}
	return cur.rec, cur.seq, nil
}

// Pull returns up to limit changes after the cursors that a holder of the
// scopes held may read, and the cursors to resume from. limit <= 0 means
// DefaultPageSize. A page stops early once it holds about
// syncproto.MaxPageBytes, so it always fits a frame. Holding scope.All, the
// changes come in sequence order under the one cursor "all"; otherwise
// scope by scope (pullScoped). A page is read from a snapshot that is all
// durable: if a commit in it is not synced yet, Pull waits until it is (see
// durableSnapshot).
func (s *Store) Pull(ctx context.Context, held []string, cursors map[string]int64, limit int) (*syncproto.Page, error) {
	if limit <= 0 || limit > syncproto.MaxPage {
		limit = DefaultPageSize
	}
	if !slices.Contains(held, scope.All) {
		return s.pullScoped(ctx, held, cursors, limit)
	}
	after := cursors[scope.All]
	sqlTx, err := s.db.Reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	defer sqlTx.Rollback()
	if _, err := s.durableSnapshot(ctx, sqlTx); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	rows, err := sqlTx.QueryContext(ctx, `SELECT collection, id, seq, data, stamps, deleted FROM records
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, fmt.Errorf("pull after %d: %w", after, err)
	}
	defer rows.Close()
	page := &syncproto.Page{Changes: make([]syncproto.Change, 0, min(limit, 256))}
	size := 0
	// One set of scan targets for all rows: declared in the loop, each
	// row's escaped to the heap.
	var (
		c       syncproto.Change
		deleted string
	)
	dest := []any{&c.Collection, &c.ID, &c.Seq, (*[]byte)(&c.Data), (*[]byte)(&c.Stamps), &deleted}
	for rows.Next() {
		if len(page.Changes) == limit || size > syncproto.MaxPageBytes {
			page.More = true
			break
		}
		c = syncproto.Change{}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("pull after %d: %w", after, err)
		}
		if c.Deleted, err = syncproto.ParseStamp(deleted); err != nil {
			return nil, fmt.Errorf("pull after %d: record %s/%s: %w", after, c.Collection, c.ID, err)
		}
		if len(page.Changes) == cap(page.Changes) { // double, as far as the limit: a quarter at a time left more garbage
			page.Changes = slices.Grow(page.Changes, min(len(page.Changes), limit-len(page.Changes)))
		}
		page.Changes = append(page.Changes, c)
		size += len(c.Data) + len(c.Stamps) + len(c.ID) + 64
		after = c.Seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	page.Cursors = map[string]int64{scope.All: after}
	return page, nil
}

// durableSnapshot fixes the read snapshot of tx and returns its newest
// sequence once everything up to it is durable and broadcast. A reader sees commits
// before they are synced (durable.go); one that a power cut took back
// would leave a device that had pulled it with a cursor past records it
// never got (a record the lost commit moved would be back at its old seq).
func (s *Store) durableSnapshot(ctx context.Context, tx interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var newest int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM records`).Scan(&newest); err != nil {
		return 0, err
	}
	if err := s.sync.waitAnnounced(ctx, newest); err != nil {
		return 0, err
	}
	return newest, nil
}

// CountMutations returns the number of applied mutations logged for a
// record: every write applied once shows here once.
func (s *Store) CountMutations(ctx context.Context, collection, id string) (int, error) {
	var n int
	err := s.db.Reader.QueryRowContext(ctx, `SELECT count(*) FROM mutations
		WHERE record = (SELECT rid FROM records WHERE `+byKey+`)`, collection, id).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count mutations of %s/%s: %w", collection, id, err)
	}
	return n, nil
}

// Stats are the store's headline figures.
type Stats struct {
	Records   int // records that exist (not deleted)
	Devices   int // devices registered and not revoked
	Conflicts int // conflicts not yet resolved
}

// Stats counts records, devices and open conflicts.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.db.Reader.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM records WHERE data != '{}'),
		(SELECT count(*) FROM devices WHERE revoked_at IS NULL),
		(SELECT count(*) FROM conflicts WHERE resolved_at IS NULL)`).Scan(&st.Records, &st.Devices, &st.Conflicts)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}
