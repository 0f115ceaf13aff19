package client

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

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
			_, err := c.applyPage(context.Background(), tx, &syncproto.Page{Changes: []syncproto.Change{ch},
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
