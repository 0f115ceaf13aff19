package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/syncproto"
)

// A page from a faulty server must not leave the replica holding a record
// its own later writes could not be merged into.
func TestApplyPage_RefusesInconsistentRecords(t *testing.T) {
	c, err := Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	apply := func(ch syncproto.Change) error {
		return c.inTx(context.Background(), sqlitedb.SyncNormal, func(tx *sqlitedb.Tx) error {
			_, err := c.applyPages(context.Background(), tx, &syncproto.Page{Changes: []syncproto.Change{ch},
				Cursors: map[string]int64{"all": ch.Seq}})
			return err
		})
	}
	err = apply(syncproto.Change{Collection: "persons", ID: "p1", Seq: 1, Data: []byte(`{"a":1}`), Stamps: []byte(`{}`)})
	if !errors.Is(err, syncproto.ErrBadMessage) {
		t.Fatalf("a field without a stamp = %v, want ErrBadMessage", err)
	}
	if _, err := c.Get(context.Background(), "persons", "p1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused record was stored: %v", err)
	}
	// A deleted record may come as an object with spaces in it.
	st := syncproto.Stamp{Wall: 1763900000000, Node: "0123456789abcdef0123456789abcdef"}
	if err := apply(syncproto.Change{Collection: "persons", ID: "p2", Seq: 2, Data: []byte(`{ }`), Stamps: []byte(`{}`), Deleted: st}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "persons", "p2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted record is visible: %v", err)
	}
}

// TestOpen_MovesQueuedBodiesOutOfTheOutbox checks migration 0004 on a
// replica made before it: the queued writes keep their bodies, in
// outbox_bodies, the unsent one is still pending and sent as it was, and
// a write leaving the outbox takes its body with it.
func TestOpen_MovesQueuedBodiesOutOfTheOutbox(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old := fstest.MapFS{}
	for _, name := range []string{"0001_init.sql", "0002_records.sql", "0003_scopes.sql"} {
		b, err := fs.ReadFile(migrations, "migrations/"+name)
		if err != nil {
			t.Fatal(err)
		}
		old["migrations/"+name] = &fstest.MapFile{Data: b}
	}
	db, err := sqlitedb.Open(ctx, path, sqlitedb.SyncFull)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, old, "migrations"); err != nil {
		t.Fatal(err)
	}
	bodies := map[string]string{}
	for i, acked := range []any{nil, int64(5)} {
		m := syncproto.Mutation{ID: fmt.Sprintf("019ab3c4-5d6e-7f80-9a1b-2c3d4e5f600%d", i), Collection: "persons",
			Record: "p1", Op: syncproto.OpPut, Data: map[string]json.RawMessage{"given_name": json.RawMessage(`"Amina"`)},
			Stamp: syncproto.Stamp{Wall: 1763900000000 + int64(i), Node: "0123456789abcdef0123456789abcdef"}}
		body, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		bodies[m.ID] = string(body)
		if _, err := db.Writer.ExecContext(ctx, `INSERT INTO outbox (id, collection, record_id, body, created_at, acked_seq)
			VALUES (?, 'persons', 'p1', ?, 0, ?)`, m.ID, body, acked); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	c, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st, err := c.Status(ctx); err != nil || st.Pending != 1 {
		t.Fatalf("pending after the migration: %d, %v; want 1", st.Pending, err)
	}
	sent, _, err := c.pendingAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 || sent[0].body != bodies[sent[0].id] || sent[0].seq != 1 {
		t.Fatalf("queued writes to send: %+v", sent)
	}
	count := func(query string) int {
		var n int
		if err := c.db.Reader.QueryRowContext(ctx, query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM pragma_table_info('outbox') WHERE name = 'body'`); n != 0 {
		t.Fatal("outbox still has a body column")
	}
	if n := count(`SELECT count(*) FROM outbox_bodies`); n != 2 {
		t.Fatalf("%d bodies, want 2", n)
	}
	if err := c.inTx(ctx, sqlitedb.SyncFull, func(tx *sqlitedb.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM outbox WHERE acked_seq IS NOT NULL`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM outbox_bodies`); n != 1 {
		t.Fatalf("%d bodies after a write left the outbox, want 1", n)
	}
}
