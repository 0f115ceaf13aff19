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
