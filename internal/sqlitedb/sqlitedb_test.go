package sqlitedb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openWritten opens a new database and commits rows rows of size bytes
// through DB.NewTx, in commits transactions, as the stores do.
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
		sqlTx, err := db.Writer.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx := db.NewTx(sqlTx)
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
