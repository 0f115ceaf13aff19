package client

import (
	"maps"
	"strings"
	"testing"

	"github.com/ponte-project/ponte/syncproto"
)

func TestJoinPages(t *testing.T) {
	ch := func(id string, seq int64) syncproto.Change {
		return syncproto.Change{Collection: "persons", ID: id, Seq: seq}
	}
	pages := []*syncproto.Page{
		{Changes: []syncproto.Change{ch("a", 1), ch("b", 2)}, Cursors: map[string]int64{"site:x": 2, "site:y": 9}, More: true},
		{Changes: []syncproto.Change{ch("c", 3)}, Cursors: map[string]int64{"site:x": 3, "site:y": 9}, More: true},
		{Changes: []syncproto.Change{ch("a", 4)}, Cursors: map[string]int64{"site:x": 4, "site:y": 5}, More: false},
	}
	got := joinPages(pages)
	var ids []string
	for _, c := range got.Changes {
		ids = append(ids, c.ID)
	}
	if want := "a b c a"; strings.Join(ids, " ") != want {
		t.Errorf("changes %q, want %q", strings.Join(ids, " "), want)
	}
	// A cursor never goes back, whatever a later page says.
	if want := map[string]int64{"site:x": 4, "site:y": 9}; !maps.Equal(got.Cursors, want) {
		t.Errorf("cursors %v, want %v", got.Cursors, want)
	}
	if got.More {
		t.Error("the last page had no more: the joined page must say so")
	}
	if one := joinPages(pages[:1]); one != pages[0] {
		t.Error("one page is applied as it is")
	}
}
