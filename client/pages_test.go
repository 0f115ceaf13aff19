package client

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/syncproto"
)

// Pages that arrived together are applied in one transaction, in order:
// a record's later change wins, every change is reported, and a cursor
// never goes back whatever a later page says.
func TestApplyPages_SeveralInOneTransaction(t *testing.T) {
	ctx := context.Background()
	c, err := Open(ctx, filepath.Join(t.TempDir(), "r.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := syncproto.Stamp{Wall: 1763900000000, Node: "0123456789abcdef0123456789abcdef"}
	ch := func(id string, seq int64, name string) syncproto.Change {
		return syncproto.Change{Collection: "persons", ID: id, Seq: seq,
			Data: []byte(`{"given_name":"` + name + `"}`), Stamps: []byte(`{"*":"` + st.String() + `"}`)}
	}
	pages := []*syncproto.Page{
		{Changes: []syncproto.Change{ch("a", 1, "Amina"), ch("b", 2, "Bilal")}, Cursors: map[string]int64{"site:x": 2, "site:y": 9}, More: true},
		{Changes: []syncproto.Change{ch("c", 3, "Chen")}, Cursors: map[string]int64{"site:x": 3, "site:y": 9}, More: true},
		{Changes: []syncproto.Change{ch("a", 4, "Aminata")}, Cursors: map[string]int64{"site:x": 4, "site:y": 5}},
	}
	var keys []RecordKey
	if err := c.inTx(ctx, sqlitedb.SyncNormal, func(tx *sqlitedb.Tx) error {
		keys, err = c.applyPages(ctx, tx, pages...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if want := []string{"a", "b", "c", "a"}; !slices.Equal(ids, want) {
		t.Errorf("changed %q, want %q", ids, want)
	}
	for id, want := range map[string]string{"a": "Aminata", "b": "Bilal", "c": "Chen"} {
		rec, err := c.Get(ctx, "persons", id)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(rec["given_name"]); got != `"`+want+`"` {
			t.Errorf("%s: given_name %s, want %q", id, got, want)
		}
	}
	cursors, err := c.cursors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"site:x": 4, "site:y": 9}; !maps.Equal(cursors, want) {
		t.Errorf("cursors %v, want %v", cursors, want)
	}
}
