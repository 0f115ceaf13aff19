// Package sqlitedb opens SQLite databases the way every Ponte store needs
// them — WAL, foreign keys, a busy timeout, one writer connection beside a
// pool of readers — and applies embedded migrations.
//
// Pragmas are per connection, so they go in the DSN and are checked after
// opening; the writer is a pool of one so writes are serialised by SQLite's
// own connection rather than by busy retries.
package sqlitedb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// driverName is mattn/go-sqlite3 with Ponte's SQL functions on every
// connection:
//
//   - casefold(text): the text in NFC with Unicode case folding, so
//     instr(casefold(name), casefold(?)) finds "ОКСАНА" by "оксана" and
//     "İlayda" by "i̇layda" — SQLite's own lower() and LIKE fold ASCII only.
//   - key_hash(collection, id): KeyHash, for queries that find a record
//     by a hash column and an index on it.
const driverName = "sqlite3_ponte"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(conn *sqlite3.SQLiteConn) error {
		if err := conn.RegisterFunc("casefold", CaseFold, true); err != nil {
			return err
		}
		return conn.RegisterFunc("key_hash", KeyHash, true)
	}})
}

// KeyHash returns a 64-bit hash of a record's key: the first 8 bytes of
// SHA-256(collection, NUL, id). An index of these integers is about a
// third the size of one of the keys, so random record ids dirty far fewer
// of its pages per commit. Two keys may share a hash: a lookup compares
// the key too. SHA-256 keeps anyone from choosing many ids with one hash,
// which would make such lookups slow. Collection names hold no NUL.
func KeyHash(collection, id string) int64 {
	h := sha256.New()
	h.Write([]byte(collection))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	return int64(binary.BigEndian.Uint64(h.Sum(sum[:0])))
}

// CaseFold returns s in NFC with Unicode case folding: two strings that
// differ only in case, in any script, fold to the same string.
func CaseFold(s string) string {
	return norm.NFC.String(cases.Fold().String(s))
}

// DB is one SQLite database file opened as a writer and a read pool, with
// a checkpointer of its own.
type DB struct {
	Path   string
	Writer *sql.DB // one connection; BEGIN IMMEDIATE
	Reader *sql.DB // read-only pool

	sync  Synchronous // Open's: the writer's setting outside BeginWrite
	file  string      // the database file as SQLite names it (symbolic links resolved)
	walMu sync.Mutex
	wal   *os.File // the WAL, kept open for SyncWAL

	wrote    chan struct{} // a transaction committed: the WAL grew
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	done     chan struct{} // closed when the checkpointer has stopped
	// checkpointing is held during a checkpoint: SQLite runs one at a
	// time and answers "busy" to another rather than waiting.
	checkpointing sync.Mutex
}

// ErrCheckpointBusy means a checkpoint could not copy the whole WAL: a
// reader still needed part of it.
var ErrCheckpointBusy = errors.New("checkpoint blocked by a reader")

// Checkpoints copy the WAL into the database file. SQLite runs them in the
// commit that crosses wal_autocheckpoint, so that commit — and every writer
// behind it — waits for the copy and its fsync: hundreds of milliseconds
// for 64 MiB. Instead a goroutine with a connection of its own runs a
// PASSIVE checkpoint, which never blocks the writer, checkpointDelay after
// a commit made with a Tx from DB.BeginWrite (measured: first syncs about 10%
// faster, and no commit stalls). It sleeps while nothing is written, which
// matters on a tablet's battery. The writer's own autocheckpoint stays as a
// backstop, at walBackstop pages, for writes made otherwise.
const (
	checkpointDelay = 500 * time.Millisecond
	walBackstop     = 65536 // pages: 256 MiB of WAL
)

// Synchronous is SQLite's durability setting for the writer connection.
type Synchronous string

// FULL syncs the WAL on every commit: a commit survives power loss. NORMAL
// syncs only at checkpoints: a commit survives a crash of the program but
// may be lost on power loss.
const (
	SyncFull   Synchronous = "FULL"
	SyncNormal Synchronous = "NORMAL"
)

// Open opens (creating if needed) the database at p with WAL journaling,
// foreign keys and a busy timeout, and checks that SQLite accepted them.
func Open(ctx context.Context, p string, sync Synchronous) (*DB, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", "10000")
	q.Set("_cache_size", "-65536") // 64 MiB of page cache per connection (the default is 2 MiB)
	q.Set("_synchronous", string(sync))
	q.Set("_txlock", "immediate")
	writer, err := sql.Open(driverName, "file:"+p+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxIdleTime(0)
	if _, err := writer.ExecContext(ctx, "PRAGMA wal_autocheckpoint = "+strconv.Itoa(walBackstop)); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	db := &DB{Path: p, Writer: writer, sync: sync}
	if err := db.check(ctx, writer); err != nil {
		writer.Close()
		return nil, err
	}
	if err := writer.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&db.file); err != nil || db.file == "" {
		writer.Close()
		return nil, fmt.Errorf("open %s: find the file SQLite writes (%q): %w", p, db.file, err)
	}
	q.Set("_txlock", "deferred")
	q.Set("mode", "ro")
	q.Del("_journal_mode") // set by the writer; a read-only connection cannot change it
	reader, err := sql.Open(driverName, "file:"+p+"?"+q.Encode())
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open %s for reading: %w", p, err)
	}
	reader.SetMaxOpenConns(4)
	db.Reader = reader
	if err := db.check(ctx, reader); err != nil {
		db.Close()
		return nil, err
	}
	q.Del("mode")
	checkpointer, err := sql.Open(driverName, "file:"+p+"?"+q.Encode())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s for checkpoints: %w", p, err)
	}
	checkpointer.SetMaxOpenConns(1)
	db.wrote, db.stop, db.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go db.checkpoints(checkpointer)
	return db, nil
}

// checkpoints runs a PASSIVE checkpoint checkpointDelay after each commit
// it hears of, until Close.
func (db *DB) checkpoints(conn *sql.DB) {
	defer close(db.done)
	defer conn.Close()
	for {
		select {
		case <-db.stop:
			return
		case <-db.wrote:
		}
		select { // let the commits of a burst gather
		case <-db.stop:
			return
		case <-time.After(checkpointDelay):
		}
		db.checkpointing.Lock()
		var busy, frames, copied int
		err := conn.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		db.checkpointing.Unlock()
		if err != nil {
			slog.Warn("checkpoint failed; the writer's autocheckpoint will do it", "db", db.Path, "err", err)
		}
	}
}

// Checkpoint runs a checkpoint of mode (PASSIVE, FULL, RESTART or
// TRUNCATE) on the writer's connection, after the checkpointer's if one is
// running. It returns ErrCheckpointBusy if the WAL could not be copied
// whole.
func (db *DB) Checkpoint(ctx context.Context, mode string) error {
	db.checkpointing.Lock()
	defer db.checkpointing.Unlock()
	var busy, frames, copied int
	if err := db.Writer.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &frames, &copied); err != nil {
		return fmt.Errorf("checkpoint %s: %w", db.Path, err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpoint %s of %s: %w", mode, db.Path, ErrCheckpointBusy)
	}
	return nil
}

// BeginWrite begins a transaction on the writer connection, with SQLite's
// durability set to sync for it; Close sets Open's back, so writes made
// outside BeginWrite keep it. Its Commit tells the checkpointer. The
// transaction does not end when ctx does: each statement and Commit check
// ctx, and the caller rolls back. Close releases the connection.
func (db *DB) BeginWrite(ctx context.Context, sync Synchronous) (*Tx, error) {
	conn, err := db.Writer.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	// Set every time, not remembered: database/sql may replace the
	// connection, and a new one starts with Open's setting. (No I/O: ~2 µs.)
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = "+string(sync)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("begin: set synchronous: %w", err)
	}
	// Not cancelled with ctx: database/sql would then roll back and close
	// the connection on its own, under the statements Exec prepared.
	sqlTx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		if sync != db.sync { // not handed back with another setting than Open's
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
		return nil, fmt.Errorf("begin: %w", err)
	}
	t := NewTx(sqlTx)
	t.wrote = db.wrote
	t.w = &writer{ctx: ctx, conn: conn, stmts: make(map[string]driver.Stmt)}
	if sync != db.sync {
		t.w.restore = db.sync
	}
	t.w.run = t.w.exec
	return t, nil
}

// SyncWAL fsyncs the write-ahead log through a descriptor of its own
// (fsync flushes the file, whoever wrote it): every commit made before it
// is then durable, however synchronous was set. The descriptor is kept
// open from the first call: Linux reports a failed write-back once to each
// descriptor open when it failed, so one opened afresh could miss it and
// call lost pages synced. While the database is open its WAL exists (its
// connections keep it), so a missing one is an error, not a success.
func (db *DB) SyncWAL() error {
	db.walMu.Lock()
	defer db.walMu.Unlock()
	path := db.file + "-wal"
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("sync %s: %w", db.Path, err)
	}
	if db.wal != nil {
		if held, err := db.wal.Stat(); err != nil || !os.SameFile(held, st) { // replaced: follow it
			db.wal.Close()
			db.wal = nil
		}
	}
	if db.wal == nil {
		if db.wal, err = os.Open(path); err != nil {
			return fmt.Errorf("sync %s: %w", db.Path, err)
		}
	}
	if err := db.wal.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", db.Path, err)
	}
	return nil
}

func (db *DB) check(ctx context.Context, conn *sql.DB) error {
	want := map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000"}
	for pragma, v := range want {
		var got string
		if err := conn.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			return fmt.Errorf("open %s: pragma %s: %w", db.Path, pragma, err)
		}
		if !strings.EqualFold(got, v) {
			return fmt.Errorf("open %s: pragma %s is %q, want %q", db.Path, pragma, got, v)
		}
	}
	return nil
}

// Close stops the checkpointer and closes both pools.
func (db *DB) Close() error {
	if db.stop != nil {
		db.stopOnce.Do(func() { close(db.stop) })
		<-db.done
	}
	var err error
	if db.Reader != nil {
		err = db.Reader.Close()
	}
	if e := db.Writer.Close(); e != nil && err == nil {
		err = e
	}
	db.walMu.Lock()
	if db.wal != nil {
		db.wal.Close()
		db.wal = nil
	}
	db.walMu.Unlock()
	return err
}

// Migrate applies, in order, the migrations in dir of fsys that the database
// has not recorded yet. Files are named NNNN_description.sql; each runs in its
// own transaction together with its record in schema_migrations.
func (db *DB) Migrate(ctx context.Context, fsys fs.FS, dir string) error {
	if _, err := db.Writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate %s: %w", db.Path, err)
	}
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.Path, err)
	}
	slices.Sort(names)
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("migrate %s: migration %s is not named NNNN_name.sql", db.Path, base)
		}
		if err := db.migrate(ctx, fsys, name, version); err != nil {
			return fmt.Errorf("migrate %s: %s: %w", db.Path, base, err)
		}
	}
	return nil
}

func (db *DB) migrate(ctx context.Context, fsys fs.FS, name string, version int) error {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	body, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		version, path.Base(name), time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

// Tx is a transaction that prepares each distinct statement once and reuses
// it, so loops over many rows do not pay for parsing SQL every time.
type Tx struct {
	*sql.Tx
	stmts map[string]*sql.Stmt
	// A writer's transaction (DB.BeginWrite) holds its connection, and
	// prepares the statements it executes on go-sqlite3 directly.
	w     *writer
	wrote chan struct{} // DB.wrote
}

// Commit commits the transaction and, for a writer's, wakes the
// checkpointer; a writer's transaction whose context is done is rolled
// back instead.
func (t *Tx) Commit() error {
	if t.w != nil {
		t.w.done = true
		if err := t.w.ctx.Err(); err != nil {
			_ = t.Tx.Rollback()
			return fmt.Errorf("commit: %w", err)
		}
	}
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	select {
	case t.wrote <- struct{}{}:
	default: // nil, or a checkpoint is due already
	}
	return nil
}

// Rollback rolls the transaction back.
func (t *Tx) Rollback() error {
	if t.w != nil {
		t.w.done = true
	}
	return t.Tx.Rollback()
}

// NewTx wraps tx; Close releases its statements.
func NewTx(tx *sql.Tx) *Tx { return &Tx{Tx: tx, stmts: make(map[string]*sql.Stmt)} }

func (t *Tx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := t.stmts[query]; ok {
		return s, nil
	}
	s, err := t.Tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	t.stmts[query] = s
	return s, nil
}

// Exec runs a statement, prepared once per transaction.
//
// The statement itself runs without ctx's cancellation: go-sqlite3 runs a
// cancellable statement on a goroutine of its own, which cost more than
// the statement (profiled: a goroutine and two wake-ups per row written).
// The transaction still follows ctx: once ctx is done, its next statement
// fails. (database/sql then rolls back a transaction of its own accord; a
// writer's waits for the caller's Rollback, see BeginWrite.)
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.w != nil {
		return t.execRaw(ctx, query, args)
	}
	s, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(context.WithoutCancel(ctx), args...)
}

// execRaw runs a statement of a writer's transaction on go-sqlite3's
// prepared statement, under the connection's lock (sql.Conn.Raw), without
// database/sql's conversion of each argument, locks and result wrapping:
// about 0.7 µs a statement, as much as SQLite takes for a small INSERT
// (bench: server CPU per pushed write and client CPU per first-sync
// record -3%). Close finalizes the statements before the connection goes
// back to the pool.
func (t *Tx) execRaw(ctx context.Context, query string, args []any) (sql.Result, error) {
	w := t.w
	if w.done {
		return nil, sql.ErrTxDone // the connection would run it outside any transaction
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w.query, w.vals = query, w.vals[:0]
	if cap(w.vals) < len(args) { // one allocation, not a chain of them
		w.vals = make([]driver.NamedValue, 0, len(args))
	}
	for i, a := range args {
		v, err := driverValue(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		w.vals = append(w.vals, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	err := w.conn.Raw(w.run)
	res := w.res
	w.res = nil
	return res, err
}

// writer is what a writer's transaction holds of its connection: the
// statements prepared on it, and the statement it is executing, for
// exec, which sql.Conn.Raw calls (bound once, it costs no allocation per
// statement, and neither do the arguments).
type writer struct {
	ctx     context.Context // BeginWrite's: Commit checks it
	restore Synchronous     // set back by Close, if not ""
	done    bool            // committed or rolled back
	conn    *sql.Conn
	stmts   map[string]driver.Stmt
	query   string
	vals    []driver.NamedValue
	res     driver.Result
	run     func(any) error // exec
}

func (w *writer) exec(dc any) error {
	s, ok := w.stmts[w.query]
	if !ok {
		var err error
		if s, err = dc.(driver.Conn).Prepare(w.query); err != nil {
			return err
		}
		w.stmts[w.query] = s
	}
	// go-sqlite3 would bind NULL to placeholders left without an argument.
	if n := s.NumInput(); n >= 0 && n != len(w.vals) {
		return fmt.Errorf("sql: expected %d arguments, got %d", n, len(w.vals))
	}
	var err error
	w.res, err = s.(driver.StmtExecContext).ExecContext(context.Background(), w.vals)
	return err
}

// driverValue converts an argument as database/sql does for go-sqlite3.
func driverValue(a any) (driver.Value, error) {
	switch v := a.(type) {
	case nil, int64, float64, bool, []byte, string, time.Time:
		return v, nil
	case int:
		return int64(v), nil
	}
	return driver.DefaultParameterConverter.ConvertValue(a)
}

// Query runs a query, prepared once per transaction.
func (t *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryRow runs a query for one row, prepared once per transaction.
func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := t.stmt(ctx, query)
	if err != nil {
		return t.Tx.QueryRowContext(ctx, query, args...) // reports the same error through Scan
	}
	return s.QueryRowContext(ctx, args...)
}

// Close releases the prepared statements, and a writer's transaction its
// connection, rolling it back unless it was committed.
func (t *Tx) Close() {
	for _, s := range t.stmts {
		s.Close()
	}
	clear(t.stmts)
	if t.w == nil {
		return
	}
	_ = t.Tx.Rollback() // sql.ErrTxDone once committed or rolled back
	_ = t.w.conn.Raw(func(any) error {
		for _, s := range t.w.stmts {
			s.Close()
		}
		return nil
	})
	if t.w.restore != "" {
		if _, err := t.w.conn.ExecContext(context.Background(), "PRAGMA synchronous = "+string(t.w.restore)); err != nil {
			// Not back to Open's setting: let database/sql replace the
			// connection with a new one, which starts with it.
			_ = t.w.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	t.w.conn.Close()
	t.w = nil
}

// QueryPlan reads the rows of an EXPLAIN QUERY PLAN statement: the detail
// of each step, such as "SEARCH records USING INDEX records_by_hash
// (key_hash=?)". Tests use it to check that queries use their indexes.
func QueryPlan(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, fmt.Errorf("query plan: %w", err)
		}
		plan = append(plan, detail)
	}
	return plan, rows.Err()
}

// Placeholders returns n copies of one ("?" or "(?, ?)") separated by
// commas, for IN lists and multi-row VALUES.
func Placeholders(n int, one string) string {
	return strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}
