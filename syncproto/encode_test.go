package syncproto_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ponte-project/ponte/syncproto"
)

// TestEncode_PageMatchesEncodingJSON checks the hand-written page encoder
// against encoding/json: both must decode to the same message.
func TestEncode_PageMatchesEncodingJSON(t *testing.T) {
	node := "0123456789abcdef0123456789abcdef"
	st := syncproto.Stamp{Wall: 1763900000000, Counter: 3, Node: node}
	rec := syncproto.Record{
		Data:   map[string]json.RawMessage{"given_name": json.RawMessage(`"أمينة"`), "notes": json.RawMessage(`"a \"quoted\"\nline"`)},
		Stamps: map[string]syncproto.Stamp{"given_name": st, "notes": st},
	}
	deleted := syncproto.NewChange("persons", "p2", 8, syncproto.Record{Deleted: st})
	for name, m := range map[string]*syncproto.Message{
		"page": {Type: syncproto.TypePage, Re: 7, Page: &syncproto.Page{
			Changes: []syncproto.Change{syncproto.NewChange("persons", "p1", 5, rec), deleted},
			Cursors: map[string]int64{"all": 8, "site:x": 3}, More: true}},
		"changes": {Type: syncproto.TypeChanges, Page: &syncproto.Page{
			Changes: []syncproto.Change{{Collection: "persons", ID: "p3", Seq: 9, Gone: true}},
			Cursors: map[string]int64{"all": 9}}},
		"empty": {Type: syncproto.TypePage, Re: 1, Page: &syncproto.Page{Cursors: map[string]int64{"all": 0}}},
	} {
		t.Run(name, func(t *testing.T) {
			fast, err := syncproto.Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			slow, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			a, err := syncproto.Decode(fast)
			if err != nil {
				t.Fatalf("decode %s: %v", fast, err)
			}
			b, err := syncproto.Decode(slow)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Page.Changes) == 0 && len(b.Page.Changes) == 0 {
				a.Page.Changes, b.Page.Changes = nil, nil
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("fast encoding decodes to %+v\nencoding/json to %+v\nfast: %s", a.Page, b.Page, fast)
			}
		})
	}
}
