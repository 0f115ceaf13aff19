package sqlitedb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckpointsOffTheWriter checks that the WAL reaches the database file
// after commits far below the writer's own autocheckpoint threshold: the
// checkpointer copied it, not a commit.
func TestCheckpointsOffTheWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := Open(ctx, path, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Writer.ExecContext(ctx, `CREATE TABLE t (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	row := strings.Repeat("x", 1000)
	const rows = 4000 // about 4 MiB: a thousand pages, far below walBackstop
	for range 4 {
		sqlTx, err := db.Writer.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx := db.NewTx(sqlTx)
		for range rows / 4 {
			if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (?)`, row); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		tx.Close()
	}
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
	if err := db.Reader.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != rows {
		t.Fatalf("rows: %d, %v", n, err)
	}
}

// TestCheckpoint_WaitsForTheCheckpointer checks that a TRUNCATE checkpoint
// asked for while the checkpointer copies a large WAL waits for it and then
// empties the WAL, rather than being turned away busy.
func TestCheckpoint_WaitsForTheCheckpointer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := Open(ctx, path, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Writer.ExecContext(ctx, `CREATE TABLE t (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	sqlTx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx := db.NewTx(sqlTx)
	row := strings.Repeat("x", 4000)
	for range 15000 { // 60 MB: the checkpointer takes a while to copy it
		if _, err := tx.Exec(ctx, `INSERT INTO t (v) VALUES (?)`, row); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx.Close()
	time.Sleep(checkpointDelay + 20*time.Millisecond) // the checkpointer has started
	if err := db.Checkpoint(ctx, "TRUNCATE"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Fatalf("WAL after a TRUNCATE checkpoint: %v bytes (%v), want 0", fi.Size(), err)
	}
}
