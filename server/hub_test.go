package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ponte-project/ponte/syncproto"
)

func TestSplitChanges_EachChunkFitsAPage(t *testing.T) {
	big := []byte(`{"notes":"` + strings.Repeat("x", 900<<10) + `"}`)
	var changes []syncproto.Change
	for i := range 20 {
		changes = append(changes, syncproto.Change{Collection: "persons", ID: fmt.Sprint(i), Seq: int64(i + 1),
			Data: big, Stamps: []byte(`{}`)})
	}
	chunks := splitChanges(changes)
	n := 0
	for _, c := range chunks {
		b, err := syncproto.Encode(&syncproto.Message{Type: syncproto.TypeChanges,
			Page: &syncproto.Page{Changes: c, Cursors: map[string]int64{"all": c[len(c)-1].Seq}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > syncproto.MaxFrameBytes || len(c) == 0 {
			t.Fatalf("chunk of %d changes, %d bytes", len(c), len(b))
		}
		for _, ch := range c {
			if ch.Seq != int64(n+1) {
				t.Fatalf("change %d out of order", ch.Seq)
			}
			n++
		}
	}
	if n != 20 || len(chunks) < 4 {
		t.Fatalf("%d changes in %d chunks", n, len(chunks))
	}
}

func TestResultMessage_FitsAFrame(t *testing.T) {
	big := []byte(`"` + strings.Repeat("n", 250<<10) + `"`)
	results := make([]syncproto.MutationResult, 100)
	for i := range results {
		results[i] = syncproto.MutationResult{ID: fmt.Sprint(i), Status: syncproto.StatusApplied, Seq: int64(i + 1),
			Conflicts: []syncproto.Conflict{{Field: "notes", Winner: syncproto.Version{Value: big}, Loser: syncproto.Version{Value: big}}}}
	}
	b, err := syncproto.Encode(resultMessage(1, results))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > syncproto.MaxFrameBytes {
		t.Fatalf("result of %d bytes exceeds a frame", len(b))
	}
	if len(results[0].Conflicts[0].Loser.Value) == 0 || len(results[99].Conflicts[0].Loser.Value) != 0 {
		t.Fatal("want the first conflicts whole and the last ones without values")
	}
}
