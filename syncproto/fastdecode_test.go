package syncproto

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzValue checks the fast parser's one-pass value check against
// json.Valid: what it accepts is valid JSON, and it accepts all of any
// valid JSON in compact form (anything else goes to encoding/json).
func FuzzValue(f *testing.F) {
	for _, s := range []string{`"a"`, `"\u00e9\n\""`, `-0.5e+10`, `0`, `01`, `-`, `1.`, `1e`, `[1,{"a":[]}]`,
		`{"a":1,"b":"c"}`, `{"a" :1}`, `[1,]`, `{,}`, `tru`, `null`, `"\x"`, `"\u12g4"`, "\"\x01\"", `{"a":}`,
		strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := fastParser{b: b}
		raw, ok := p.value()
		if ok && !json.Valid(raw) {
			t.Fatalf("accepted %q, which is not JSON", raw)
		}
		var compact bytes.Buffer
		if json.Valid(b) && json.Compact(&compact, b) == nil && bytes.Equal(compact.Bytes(), b) && (!ok || len(raw) != len(b)) {
			t.Fatalf("refused compact JSON %q (read %d bytes)", b, p.i)
		}
	})
}

// agreesWithJSON checks a fast parser against encoding/json on frame: when
// the parser accepts it, encoding/json must decode the same message.
// normalize, if not nil, evens out what the two may differ in (an empty
// list read as nil or as []); part picks what a failure shows of each.
func agreesWithJSON(t *testing.T, frame []byte, parse func([]byte) (*Message, bool), part func(*Message) any,
	normalize func(fast, slow *Message)) {
	t.Helper()
	if !utf8.Valid(frame) { // Decode refuses such frames before parsing
		return
	}
	fast, ok := parse(frame)
	if !ok {
		return
	}
	var slow Message
	if err := json.Unmarshal(frame, &slow); err != nil {
		t.Fatalf("fast parser accepted what encoding/json refuses (%v): %q", err, frame)
	}
	if normalize != nil {
		normalize(fast, &slow)
	}
	if !reflect.DeepEqual(fast, &slow) {
		t.Fatalf("fast parser disagrees with encoding/json on %q:\nfast %+v\nslow %+v", frame, part(fast), part(&slow))
	}
}

// FuzzDecodePage checks the fast page parser against encoding/json: when it
// accepts a frame, encoding/json must decode the same message.
func FuzzDecodePage(f *testing.F) {
	st := Stamp{Wall: 1763900000000, Counter: 2, Node: "0123456789abcdef0123456789abcdef"}
	rec := Record{Data: map[string]json.RawMessage{"given_name": json.RawMessage(`"أمينة"`), "n": json.RawMessage(`[1,{"a":"}"}]`)},
		Stamps: map[string]Stamp{"given_name": st, "n": st}}
	for _, m := range []*Message{
		{Type: TypePage, Re: 3, Page: &Page{Changes: []Change{NewChange("persons", "p1", 4, rec),
			NewChange("persons", "p2", 9, Record{Deleted: st}), {Collection: "a", ID: "b", Seq: 10, Gone: true}},
			Cursors: map[string]int64{"all": 10, "site:1": 2}, More: true}},
		{Type: TypeChanges, Page: &Page{Cursors: map[string]int64{"all": 0}}},
	} {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"page","page":{"changes":[{"collection":"x","id":"y","seq":1,"data":{"a":"\"}"},"stamps":{}}],"cursors":{}}}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		agreesWithJSON(t, frame, decodePage, func(m *Message) any { return m.Page }, func(fast, slow *Message) {
			if len(fast.Page.Changes) == 0 && len(slow.Page.Changes) == 0 {
				fast.Page.Changes, slow.Page.Changes = nil, nil
			}
		})
	})
}

func TestDecodePage_RoundTripsAppendPage(t *testing.T) {
	st := Stamp{Wall: 1763900000000, Node: "0123456789abcdef0123456789abcdef"}
	m := &Message{Type: TypePage, Re: 7, Page: &Page{Changes: []Change{
		NewChange("persons", "p1", 5, Record{Data: map[string]json.RawMessage{"x": json.RawMessage(`"<&>"`)},
			Stamps: map[string]Stamp{"x": st}})}, Cursors: map[string]int64{"all": 5}}}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := decodePage(b)
	if !ok {
		t.Fatalf("fast parser refused appendPage's output %s", b)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v, want %+v", got.Page, m.Page)
	}
}

// FuzzDecodePush checks the fast push parser against encoding/json: when it
// accepts a frame, encoding/json must decode the same message.
func FuzzDecodePush(f *testing.F) {
	node := "0123456789abcdef0123456789abcdef"
	put := Mutation{ID: "01a209c9-2637-7ef0-b53b-2bb628a67fc9", Collection: "persons", Record: "p1", Op: OpPut,
		Data: map[string]json.RawMessage{"given_name": json.RawMessage(`"أمينة"`), "n": json.RawMessage(`[1,{"a":"}"}]`),
			"ok": json.RawMessage(`true`), "x": json.RawMessage(`-1.5e3`), "s": json.RawMessage(`"a\\\"b"`)},
		Stamp: Stamp{Wall: 1763900000000, Node: node}, Base: map[string]Stamp{"n": {Wall: 5, Node: node}}}
	del := Mutation{ID: "01a209c9-2637-7ef0-b53b-2bb628a67fca", Collection: "persons", Record: "p1", Op: OpDelete,
		Stamp: Stamp{Wall: 1763900000001, Node: node}}
	for _, m := range []*Message{
		{Type: TypePush, Re: 9, Push: &Push{Mutations: []Mutation{put, del}}},
		{Type: TypePush, Push: &Push{Mutations: []Mutation{del}}},
	} {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		agreesWithJSON(t, frame, decodePush, func(m *Message) any { return m.Push }, func(fast, slow *Message) {
			checkedJSON(t, fast)
			if len(fast.Push.Mutations) == 0 && len(slow.Push.Mutations) == 0 {
				fast.Push.Mutations, slow.Push.Mutations = nil, nil
			}
		})
	})
}

// FuzzDecodeResult checks the fast result parser against encoding/json:
// when it accepts a frame, encoding/json must decode the same message.
func FuzzDecodeResult(f *testing.F) {
	for _, m := range resultFrames() {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"result","result":{"results":[{"id":"a\"b","status":"applied"}]}}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		agreesWithJSON(t, frame, decodeResult, func(m *Message) any { return m.Result }, nil)
	})
}

// resultFrames are results as a server sends them: plain ones, which the
// fast parser takes, and one with a conflict and a refusal, which it leaves.
func resultFrames() []*Message {
	st := Stamp{Wall: 1763900000000, Counter: 2, Node: "0123456789abcdef0123456789abcdef"}
	return []*Message{
		{Type: TypeResult, Re: 12, Result: &Result{Results: []MutationResult{
			{ID: "01a209c9-2637-7ef0-b53b-2bb628a67fc9", Status: StatusApplied, Seq: 41},
			{ID: "01a209c9-2637-7ef0-b53b-2bb628a67fca", Status: StatusDuplicate, Seq: 7}}}},
		{Type: TypeResult, Re: 1, Result: &Result{Results: []MutationResult{}}},
		{Type: TypeResult, Re: 2, Result: &Result{Results: []MutationResult{
			{ID: "01a209c9-2637-7ef0-b53b-2bb628a67fcb", Status: StatusApplied, Seq: 42, Stamp: st,
				Conflicts: []Conflict{{Field: "phone", Winner: Version{Value: json.RawMessage(`"+39"`), Stamp: st}, Loser: Version{Stamp: st}}}},
			{ID: "01a209c9-2637-7ef0-b53b-2bb628a67fcc", Status: StatusRejected, Code: CodeInvalid, Message: "no"}}}},
	}
}

func TestDecodeResult_ParsesTheServersPlainResults(t *testing.T) {
	for i, m := range resultFrames() {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeResult(b)
		if want := i < 2; ok != want {
			t.Fatalf("frame %d: fast parser took it: %v, want %v: %s", i, ok, want, b)
		}
		if ok && !reflect.DeepEqual(got, m) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got.Result, m.Result)
		}
		if d, err := Decode(b); err != nil || !reflect.DeepEqual(d, m) {
			t.Fatalf("frame %d: Decode gave %+v (%v), want %+v", i, d, err, m)
		}
	}
}

// checkedJSON fails unless every value of a mutation the fast parser marks
// as checked is JSON, then clears the marks for comparison with
// encoding/json's result.
func checkedJSON(t *testing.T, m *Message) {
	t.Helper()
	for i := range m.Push.Mutations {
		mut := &m.Push.Mutations[i]
		for f, v := range mut.Data {
			if mut.jsonKnown && !json.Valid(v) {
				t.Fatalf("mutation %s: field %s marked as checked is not JSON: %q", mut.ID, f, v)
			}
		}
		mut.jsonKnown = false
	}
}

func TestDecodePush_ParsesTheClientsFrames(t *testing.T) {
	node := "0123456789abcdef0123456789abcdef"
	m := &Message{Type: TypePush, Re: 3, Push: &Push{Mutations: []Mutation{{ID: "01a209c9-2637-7ef0-b53b-2bb628a67fc9",
		Collection: "persons", Record: "p1", Op: OpPut, Data: map[string]json.RawMessage{"a": json.RawMessage(`"\u003c"`)},
		Stamp: Stamp{Wall: 1, Node: node}, Base: map[string]Stamp{"a": {Wall: 2, Node: node}}}}}}
	b, _ := json.Marshal(m)
	got, ok := decodePush(b)
	if !ok {
		t.Fatalf("fast parser refused %s", b)
	}
	checkedJSON(t, got)
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v, want %+v", got.Push, m.Push)
	}
}
