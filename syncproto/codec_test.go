package syncproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ponte-project/ponte/syncproto"
)

func TestEncodeStamps(t *testing.T) {
	var (
		s1 = syncproto.Stamp{Wall: 100, Node: nodeA}
		s2 = syncproto.Stamp{Wall: 200, Node: nodeB}
		s3 = syncproto.Stamp{Wall: 200, Counter: 1, Node: nodeB}
	)
	tests := []struct {
		name   string
		stamps map[string]syncproto.Stamp
		want   string
	}{
		{"Empty", nil, `{}`},
		{"OnePut", map[string]syncproto.Stamp{"a": s1, "b": s1, "c": s1}, `{"*":"` + s1.String() + `"}`},
		{"MostCommonIsDefault", map[string]syncproto.Stamp{"a": s1, "b": s2, "c": s2, "d": s3},
			`{"*":"` + s2.String() + `","a":"` + s1.String() + `","d":"` + s3.String() + `"}`},
		{"TieGoesToNewest", map[string]syncproto.Stamp{"a": s2, "b": s1},
			`{"*":"` + s2.String() + `","b":"` + s1.String() + `"}`},
		{"TieOfThree", map[string]syncproto.Stamp{"x": s1, "y": s3, "z": s2},
			`{"*":"` + s3.String() + `","x":"` + s1.String() + `","z":"` + s2.String() + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := syncproto.EncodeStamps(tt.stamps)
			if string(got) != tt.want {
				t.Fatalf("EncodeStamps = %s\nwant           %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("EncodeStamps = %s is not JSON", got)
			}
		})
	}
}

func genStampMap(r *rand.Rand) map[string]syncproto.Stamp {
	m := map[string]syncproto.Stamp{}
	n := r.IntN(8)
	for i := range n {
		m[string(rune('a'+i))+strings.Repeat("x", r.IntN(3))] = genStamp(r, 1, 3)
	}
	return m
}

func TestEncodeStamps_IsDeterministicAndRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 10))
	for range 2000 {
		stamps := genStampMap(r)
		enc := syncproto.EncodeStamps(stamps)
		for range 5 {
			// Map iteration order varies between calls; the bytes must not.
			if again := syncproto.EncodeStamps(maps.Clone(stamps)); !bytes.Equal(again, enc) {
				t.Fatalf("EncodeStamps not deterministic: %s vs %s", enc, again)
			}
		}
		// "*" holds a stamp at least as common as any other.
		var decoded map[string]syncproto.Stamp
		if err := json.Unmarshal(enc, &decoded); err != nil {
			t.Fatalf("EncodeStamps = %s: %v", enc, err)
		}
		if len(stamps) > 0 {
			common, ok := decoded["*"]
			if !ok {
				t.Fatalf("EncodeStamps = %s has no \"*\"", enc)
			}
			count := map[syncproto.Stamp]int{}
			for _, s := range stamps {
				count[s]++
			}
			for s, n := range count {
				if n > count[common] {
					t.Fatalf("EncodeStamps = %s: \"*\" = %v used %d times, %v used %d times", enc, common, count[common], s, n)
				}
			}
		}
		data := map[string]json.RawMessage{}
		for f := range stamps {
			data[f] = json.RawMessage(`1`)
		}
		back, err := syncproto.DecodeStamps(enc, data)
		if err != nil {
			t.Fatalf("DecodeStamps(%s): %v", enc, err)
		}
		if !maps.Equal(back, stamps) {
			t.Fatalf("round trip of %v through %s gave %v", stamps, enc, back)
		}
	}
}

func TestDecodeStamps_Errors(t *testing.T) {
	s1 := syncproto.Stamp{Wall: 100, Node: nodeA}.String()
	data := func(fields ...string) map[string]json.RawMessage {
		d := map[string]json.RawMessage{}
		for _, f := range fields {
			d[f] = json.RawMessage(`1`)
		}
		return d
	}
	tests := []struct {
		name string
		raw  string
		data map[string]json.RawMessage
	}{
		{"MissingStampWithoutDefault", `{"a":"` + s1 + `"}`, data("a", "b")},
		{"EmptyObjectForData", `{}`, data("a")},
		{"NullForData", `null`, data("a")},
		{"StampForAbsentField", `{"*":"` + s1 + `","z":"` + s1 + `"}`, data("a")},
		{"ZeroStampForField", `{"*":"` + s1 + `","a":""}`, data("a", "b")},
		{"ZeroDefault", `{"*":""}`, data("a")},
		{"MalformedStamp", `{"*":"` + strings.ToUpper(s1) + `"}`, data("a")},
		{"ShortStamp", `{"*":"0001"}`, data("a")},
		{"NotAString", `{"*":12}`, data("a")},
		{"NotJSON", `{"*":`, data("a")},
		{"Array", `["` + s1 + `"]`, data("a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := syncproto.DecodeStamps([]byte(tt.raw), tt.data)
			if err == nil {
				t.Fatalf("DecodeStamps(%s) = %v, want error", tt.raw, got)
			}
			if !errors.Is(err, syncproto.ErrBadMessage) {
				t.Fatalf("DecodeStamps(%s) error %v does not wrap ErrBadMessage", tt.raw, err)
			}
			if syncproto.ErrorCode(err) != syncproto.CodeBadMessage {
				t.Fatalf("ErrorCode = %q", syncproto.ErrorCode(err))
			}
		})
	}
	t.Run("EmptyForNoFields", func(t *testing.T) {
		for _, raw := range []string{`{}`, `null`, `{"*":"` + s1 + `"}`} {
			got, err := syncproto.DecodeStamps([]byte(raw), nil)
			if err != nil || len(got) != 0 {
				t.Fatalf("DecodeStamps(%s, no fields) = %v, %v", raw, got, err)
			}
		}
	})
}

func TestEncodeData(t *testing.T) {
	t.Run("SortedCompact", func(t *testing.T) {
		data := map[string]json.RawMessage{
			"zeta": json.RawMessage(`"z"`), "alpha": json.RawMessage(`{"b":1}`), "mid": json.RawMessage(`null`),
			"b": json.RawMessage(`[1,2]`),
		}
		want := `{"alpha":{"b":1},"b":[1,2],"mid":null,"zeta":"z"}`
		for range 5 {
			if got := syncproto.EncodeData(data); string(got) != want {
				t.Fatalf("EncodeData = %s, want %s", got, want)
			}
		}
	})
	t.Run("Empty", func(t *testing.T) {
		if got := syncproto.EncodeData(nil); string(got) != `{}` {
			t.Fatalf("EncodeData(nil) = %s", got)
		}
	})
	t.Run("RoundTrip", func(t *testing.T) {
		r := rand.New(rand.NewPCG(testSeed(t), 11))
		for range 1000 {
			data := map[string]json.RawMessage{}
			for range r.IntN(6) {
				data[genFields[r.IntN(len(genFields))]+string(rune('a'+r.IntN(26)))] = json.RawMessage(genValues[r.IntN(len(genValues))])
			}
			enc := syncproto.EncodeData(data)
			back, err := syncproto.DecodeData(enc)
			if err != nil {
				t.Fatalf("DecodeData(%s): %v", enc, err)
			}
			if !maps.EqualFunc(back, data, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
				t.Fatalf("round trip of %v gave %v", data, back)
			}
		}
	})
	t.Run("EscapesNames", func(t *testing.T) {
		data := map[string]json.RawMessage{`q"uote`: json.RawMessage(`1`)}
		back, err := syncproto.DecodeData(syncproto.EncodeData(data))
		if err != nil || string(back[`q"uote`]) != `1` {
			t.Fatalf("round trip = %v, %v", back, err)
		}
	})
}

func TestDecodeData(t *testing.T) {
	for _, raw := range []string{`{}`, `null`} {
		got, err := syncproto.DecodeData([]byte(raw))
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("DecodeData(%s) = %#v, %v; want an empty non-nil map", raw, got, err)
		}
	}
	for _, raw := range []string{``, `[]`, `{"a":}`, `"s"`, `{"a":1`} {
		t.Run(raw, func(t *testing.T) {
			_, err := syncproto.DecodeData([]byte(raw))
			if !errors.Is(err, syncproto.ErrBadMessage) {
				t.Fatalf("DecodeData(%s) = %v, want ErrBadMessage", raw, err)
			}
		})
	}
}

func TestChange_RecordRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 12))
	for range 2000 {
		rec := genRecord(r)
		c := syncproto.NewChange("notes", "n-1", 42, rec)
		if c.Collection != "notes" || c.ID != "n-1" || c.Seq != 42 || c.Deleted != rec.Deleted {
			t.Fatalf("NewChange = %+v", c)
		}
		// Through the wire, too.
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var wire syncproto.Change
		if err := json.Unmarshal(b, &wire); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		for _, cc := range []syncproto.Change{c, wire} {
			back, err := cc.Record()
			if err != nil {
				t.Fatalf("Record() of %s: %v", b, err)
			}
			if !back.Equal(rec) {
				t.Fatalf("round trip of %s gave %s (change %s)", recordString(rec), recordString(back), b)
			}
		}
	}
	t.Run("NoData", func(t *testing.T) {
		del := syncproto.Stamp{Wall: 9, Node: nodeA}
		back, err := syncproto.Change{Collection: "c", ID: "x", Seq: 1, Deleted: del}.Record()
		if err != nil || back.Exists() || back.Deleted != del || back.Data == nil || back.Stamps == nil {
			t.Fatalf("Record() = %+v, %v", back, err)
		}
	})
	t.Run("BadStampsWrapErrBadMessage", func(t *testing.T) {
		c := syncproto.Change{Collection: "c", ID: "x", Seq: 1, Data: json.RawMessage(`{"a":1}`), Stamps: json.RawMessage(`{}`)}
		if _, err := c.Record(); !errors.Is(err, syncproto.ErrBadMessage) || !strings.Contains(err.Error(), "c/x") {
			t.Fatalf("Record() error = %v, want ErrBadMessage naming the change", err)
		}
		c.Data = json.RawMessage(`[1]`)
		if _, err := c.Record(); !errors.Is(err, syncproto.ErrBadMessage) {
			t.Fatalf("Record() error = %v, want ErrBadMessage", err)
		}
	})
}
