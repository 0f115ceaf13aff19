package client

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ponte-project/ponte/syncproto"
)

// indexes returns the definitions of replica_records' indexes by name.
func indexes(t *testing.T, c *Client) map[string]string {
	t.Helper()
	rows, err := c.db.Writer.Query(`SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'replica_records' AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		out[name] = def
	}
	return out
}

// personsPage returns a page of n persons of site s, ids starting at from.
func personsPage(from, n int, site string, more bool) *syncproto.Page {
	st := syncproto.Stamp{Wall: 1763900000000, Node: "0123456789abcdef0123456789abcdef"}
	p := &syncproto.Page{Cursors: map[string]int64{"all": int64(from + n)}, More: more}
	for i := from; i < from+n; i++ {
		p.Changes = append(p.Changes, syncproto.Change{Collection: "persons", ID: fmt.Sprintf("p%d", i), Seq: int64(i + 1),
			Data:   []byte(fmt.Sprintf(`{"given_name":"Amina %d","site_id":%q}`, i, site)),
			Stamps: []byte(`{"*":"` + st.String() + `"}`)})
	}
	return p
}

func bySite(t *testing.T, c *Client, site string) (n int, plan string) {
	t.Helper()
	q := `SELECT count(*) FROM persons WHERE site_id = ?`
	if err := c.db.Reader.QueryRow(q, site).Scan(&n); err != nil {
		t.Fatal(err)
	}
	rows, err := c.db.Reader.Query(`EXPLAIN QUERY PLAN `+q, site)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan += detail + "; "
	}
	return n, plan
}

// A catch-up of several pages into an empty replica drops the indexes its
// collections would enter and builds them when it ends, whichever way it
// ends: caught up, the session over early, the process gone, or a wipe.
func TestCatchUp_DefersIndexesOfAnEmptyReplica(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T, path string) *Client {
		c, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fresh := func(t *testing.T) (*Client, string) {
		path := filepath.Join(t.TempDir(), "r.db")
		c := open(t, path)
		t.Cleanup(func() { c.Close() })
		return c, path
	}
	c, _ := fresh(t)
	want := indexes(t, c)
	if want["persons_by_site"] == "" || want["appointments_by_person"] == "" {
		t.Fatalf("the migrations' indexes are not all there: %v", want)
	}

	// startCatchUp applies the first of several pages and checks what was
	// deferred: persons' index only, the key index never.
	startCatchUp := func(t *testing.T, c *Client) *round {
		t.Helper()
		s := &round{c: c}
		if err := s.apply(ctx, []*syncproto.Page{personsPage(0, 30, "site-a", true)}, false); err != nil {
			t.Fatal(err)
		}
		got := indexes(t, c)
		if !s.deferred || got["persons_by_site"] != "" || got["replica_records_by_key"] == "" || got["appointments_by_person"] == "" {
			t.Fatalf("deferred %v; indexes during the catch-up: %v", s.deferred, slicesOf(got))
		}
		if n, plan := bySite(t, c, "site-a"); n != 30 || strings.Contains(plan, "persons_by_site") {
			t.Fatalf("during the catch-up: %d persons of site-a by %q, want 30 without the index", n, plan)
		}
		return s
	}
	rebuilt := func(t *testing.T, c *Client, persons int) {
		t.Helper()
		if got := indexes(t, c); !maps.Equal(got, want) {
			t.Fatalf("indexes after the catch-up: %v, want %v", got, want)
		}
		if n, plan := bySite(t, c, "site-a"); n != persons || !strings.Contains(plan, "persons_by_site") {
			t.Fatalf("after the catch-up: %d persons of site-a by %q, want %d by persons_by_site", n, plan, persons)
		}
		if m, err := meta(ctx, c.db.Writer, deferredIndexes); err != nil || m[deferredIndexes] != "" {
			t.Fatalf("deferred indexes still recorded: %q, %v", m[deferredIndexes], err)
		}
	}

	t.Run("caught up", func(t *testing.T) {
		c, _ := fresh(t)
		s := startCatchUp(t, c)
		if err := s.apply(ctx, []*syncproto.Page{personsPage(30, 30, "site-a", true), personsPage(60, 30, "site-b", true)}, false); err != nil {
			t.Fatal(err)
		}
		if err := s.apply(ctx, []*syncproto.Page{personsPage(90, 10, "site-a", false)}, true); err != nil {
			t.Fatal(err)
		}
		if s.deferred {
			t.Fatal("still deferred after the last page")
		}
		rebuilt(t, c, 70)
	})
	t.Run("session ended early", func(t *testing.T) {
		c, _ := fresh(t)
		s := startCatchUp(t, c)
		s.buildDeferredIndexes(ctx)
		rebuilt(t, c, 30)
	})
	t.Run("process ended", func(t *testing.T) {
		c, path := fresh(t)
		startCatchUp(t, c)
		c.Close()
		c = open(t, path)
		defer c.Close()
		rebuilt(t, c, 30)
	})
	t.Run("wiped", func(t *testing.T) {
		c, _ := fresh(t)
		startCatchUp(t, c)
		if err := c.wipe(ctx); err != nil {
			t.Fatal(err)
		}
		rebuilt(t, c, 0)
	})
	t.Run("a list left by a failed build stands", func(t *testing.T) {
		c, _ := fresh(t)
		startCatchUp(t, c)
		// The build failed; a later catch-up starts while the replica is
		// still empty (here: emptied by hand) and must not lose the list.
		if _, err := c.db.Writer.Exec(`DELETE FROM replica_records`); err != nil {
			t.Fatal(err)
		}
		s := &round{c: c}
		if err := s.apply(ctx, []*syncproto.Page{personsPage(0, 30, "site-a", true)}, false); err != nil {
			t.Fatal(err)
		}
		if !s.deferred {
			t.Fatal("the catch-up does not know indexes are deferred")
		}
		if err := s.apply(ctx, []*syncproto.Page{personsPage(30, 10, "site-a", false)}, true); err != nil {
			t.Fatal(err)
		}
		rebuilt(t, c, 40)
	})
	t.Run("not for a replica holding records", func(t *testing.T) {
		c, _ := fresh(t)
		if err := c.Put(ctx, "persons", "mine", map[string]any{"given_name": "Olena"}); err != nil {
			t.Fatal(err)
		}
		s := &round{c: c}
		if err := s.apply(ctx, []*syncproto.Page{personsPage(0, 30, "site-a", true)}, false); err != nil {
			t.Fatal(err)
		}
		if got := indexes(t, c); s.deferred || !maps.Equal(got, want) {
			t.Fatalf("deferred %v, indexes %v", s.deferred, slicesOf(got))
		}
	})
	t.Run("not for a single page", func(t *testing.T) {
		c, _ := fresh(t)
		s := &round{c: c}
		if err := s.apply(ctx, []*syncproto.Page{personsPage(0, 30, "site-a", false)}, true); err != nil {
			t.Fatal(err)
		}
		if got := indexes(t, c); s.deferred || !maps.Equal(got, want) {
			t.Fatalf("deferred %v, indexes %v", s.deferred, slicesOf(got))
		}
	})
}

func slicesOf(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
