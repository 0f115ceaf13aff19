package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
)

// openWritten opens a new database and commits rows rows of size bytes
// through DB.BeginWrite, in commits transactions, as the stores do.
func openWritten(t *testing.T, rows, size, commits int) (*DB, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := Open(ctx, path, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Writer.ExecContext(ctx, `CREATE TABLE t (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	row := strings.Repeat("x", size)
	for range commits {
		tx, err := db.BeginWrite(ctx, SyncNormal)
		if err != nil {
			t.Fatal(err)
		}
		for range rows / commits {
			if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (?)`, row); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		tx.Close()
	}
	return db, path
}

// TestCheckpointsOffTheWriter checks that the WAL reaches the database file
// after commits far below the writer's own autocheckpoint threshold: the
// checkpointer copied it, not a commit.
func TestCheckpointsOffTheWriter(t *testing.T) {
	const rows = 4000 // about 4 MiB: a thousand pages, far below walBackstop
	db, path := openWritten(t, rows, 1000, 4)
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > rows*1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes 10s after %d rows of 1000 bytes were committed", fi.Size(), rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var n int
	if err := db.Reader.QueryRowContext(context.Background(), `SELECT count(*) FROM t`).Scan(&n); err != nil || n != rows {
		t.Fatalf("rows: %d, %v", n, err)
	}
}

// TestCheckpoint_WaitsForTheCheckpointer checks that a TRUNCATE checkpoint
// asked for while the checkpointer copies a large WAL waits for it and then
// empties the WAL, rather than being turned away busy.
func TestCheckpoint_WaitsForTheCheckpointer(t *testing.T) {
	db, path := openWritten(t, 15000, 4000, 1)        // 60 MB: the checkpointer takes a while to copy it
	time.Sleep(checkpointDelay + 20*time.Millisecond) // the checkpointer has started
	if err := db.Checkpoint(context.Background(), "TRUNCATE"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 0 {
		t.Fatalf("WAL after a TRUNCATE checkpoint: %d bytes, want 0", fi.Size())
	}
}

// TestBeginWrite_StoresArgumentsAsDatabaseSQL checks that a writer's
// transaction, which hands arguments to go-sqlite3 itself, stores each kind
// of argument as database/sql does, and reports the rows it changed.
func TestBeginWrite_StoresArgumentsAsDatabaseSQL(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "a.db"), SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Writer.ExecContext(ctx, `CREATE TABLE t (path TEXT, i, i64, f, b, s, bs, n, ns, ni, tm, u8)`); err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	at := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	args := func(path string) []any {
		return []any{path, 42, int64(-7), 2.5, true, "città", []byte("bytes"), nil,
			sql.NullString{}, sql.NullInt64{Int64: 9, Valid: true}, at, uint8(200)}
	}
	if _, err := db.Writer.ExecContext(ctx, insert, args("database/sql")...); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginWrite(ctx, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for range 2 { // the second time through the prepared statement
		res, err := tx.Exec(ctx, insert, args("raw")...)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("rows affected: %d, %v", n, err)
		}
	}
	res, err := tx.Exec(ctx, `UPDATE t SET i = i + 1 WHERE path = ?`, "raw")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 2 {
		t.Fatalf("rows affected by the update: %d, %v", n, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE t SET i = i - 1 WHERE path = ?`, "raw"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Reader.QueryContext(ctx, `SELECT path, quote(i) || typeof(i), quote(i64) || typeof(i64), quote(f) || typeof(f),
		quote(b) || typeof(b), quote(s) || typeof(s), quote(bs) || typeof(bs), typeof(n), typeof(ns),
		quote(ni) || typeof(ni), quote(tm) || typeof(tm), quote(u8) || typeof(u8) FROM t ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var path string
		cols := make([]string, 11)
		dest := []any{&path}
		for i := range cols {
			dest = append(dest, &cols[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join(cols, " "))
	}
	if len(got) != 3 || got[1] != got[0] || got[2] != got[0] {
		t.Fatalf("stored through database/sql, then twice through a writer's transaction:\n%s", strings.Join(got, "\n"))
	}
}

// TestBeginWrite_FollowsContext checks that once the context of a writer's
// transaction is done its statements and its commit fail with the
// context's error, that nothing of it is kept, and that the writer
// connection serves the next transaction.
func TestBeginWrite_FollowsContext(t *testing.T) {
	db, _ := openWritten(t, 10, 10, 1)
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := db.BeginWrite(ctx, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (?)`, "kept until cancelled"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (?)`, "after"); !errors.Is(err, context.Canceled) {
		t.Fatalf("statement after cancel: %v, want context.Canceled", err)
	}
	if err := tx.Commit(); !errors.Is(err, context.Canceled) {
		t.Fatalf("commit after cancel: %v, want context.Canceled", err)
	}
	tx.Close()

	tx, err = db.BeginWrite(context.Background(), SyncFull)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	var n, sync int
	if err := tx.QueryRow(context.Background(), `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 10 {
		t.Fatalf("rows after the cancelled transaction: %d, %v; want 10", n, err)
	}
	if err := tx.QueryRow(context.Background(), `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous: %d, %v; want 2 (FULL)", sync, err)
	}
}

// TestBeginWrite_SetsSynchronousEveryTime: the connection under a writer's
// transaction may not be the one an earlier transaction configured (database/sql
// replaces a broken one, which starts with Open's setting), so the setting
// asked for holds whatever the connection had.
func TestBeginWrite_SetsSynchronousEveryTime(t *testing.T) {
	db, _ := openWritten(t, 0, 0, 1)
	ctx := context.Background()
	for _, want := range []struct {
		mode Synchronous
		code int
	}{{SyncNormal, 1}, {SyncNormal, 1}, {SyncFull, 2}} {
		// As a fresh connection would: a setting BeginWrite did not make.
		if _, err := db.Writer.ExecContext(ctx, `PRAGMA synchronous = OFF`); err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginWrite(ctx, want.mode)
		if err != nil {
			t.Fatal(err)
		}
		var sync int
		err = tx.QueryRow(ctx, `PRAGMA synchronous`).Scan(&sync)
		tx.Close()
		if err != nil || sync != want.code {
			t.Fatalf("BeginWrite(%s): synchronous %d, %v; want %d", want.mode, sync, err, want.code)
		}
	}
}

// TestBeginWrite_ReportsSQLiteErrors checks that a statement SQLite refuses
// fails with go-sqlite3's error, which callers may test.
func TestBeginWrite_ReportsSQLiteErrors(t *testing.T) {
	db, _ := openWritten(t, 0, 0, 1)
	ctx := context.Background()
	if _, err := db.Writer.ExecContext(ctx, `CREATE TABLE u (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginWrite(ctx, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if _, err := tx.Exec(ctx, `INSERT INTO u VALUES (?)`, "a"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO u VALUES (?)`, "a")
	var serr sqlite3.Error
	if !errors.As(err, &serr) || serr.Code != sqlite3.ErrConstraint {
		t.Fatalf("duplicate key: %v, want a constraint error", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO nowhere VALUES (?)`, 1); err == nil {
		t.Fatal("a statement on a missing table succeeded")
	}
}

// TestBeginWrite_RefusesMisuse checks what database/sql refused before a
// writer's transaction ran statements itself: a statement given too few
// arguments (go-sqlite3 would bind NULL to the rest), and one executed
// after Commit or Rollback (the connection would run it on its own,
// outside any transaction). Neither may store anything.
func TestBeginWrite_RefusesMisuse(t *testing.T) {
	db, _ := openWritten(t, 0, 0, 1)
	ctx := context.Background()
	tx, err := db.BeginWrite(ctx, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (? || ?)`, "one"); err == nil {
		t.Error("a statement with two placeholders ran with one argument")
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (?)`, "one", "two"); err == nil {
		t.Error("a statement with one placeholder ran with two arguments")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (?)`, "after commit"); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("a statement after commit: %v, want sql.ErrTxDone", err)
	}
	tx.Close()
	tx, err = db.BeginWrite(ctx, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (?)`, "after rollback"); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("a statement after rollback: %v, want sql.ErrTxDone", err)
	}
	tx.Close()
	var n int
	if err := db.Reader.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows stored: %d, %v; want 0", n, err)
	}
}

// A transaction's setting ends with it: a write made outside BeginWrite
// afterwards runs with Open's (a revocation must not lose its fsync to the
// push before it).
func TestBeginWrite_CloseRestoresOpensSynchronous(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "r.db"), SyncFull)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, mode := range []Synchronous{SyncNormal, SyncFull} {
		tx, err := db.BeginWrite(ctx, mode)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		tx.Close()
		var sync int
		if err := db.Writer.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
			t.Fatalf("after a %s transaction: synchronous %d, %v; want Open's FULL (2)", mode, sync, err)
		}
	}
}

// SyncWAL fsyncs the file SQLite writes: with the database opened through
// a symbolic link, the WAL is beside the file the link names.
func TestSyncWAL_FollowsTheFileSQLiteWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real", "r.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(filepath.Join(dir, "real", "r.db"), link); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, link, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Writer.ExecContext(ctx, `CREATE TABLE t (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "real", "r.db-wal")); err != nil {
		t.Fatalf("SQLite's WAL is not beside the linked file: %v", err)
	}
	if _, err := os.Stat(link + "-wal"); err == nil {
		t.Fatal("a WAL beside the link too")
	}
	if db.file != filepath.Join(dir, "real", "r.db") {
		t.Fatalf("file %q, want the linked one", db.file)
	}
	if err := db.SyncWAL(); err != nil {
		t.Fatal(err)
	}
}
