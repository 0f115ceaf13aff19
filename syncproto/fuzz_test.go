package syncproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ponte-project/ponte/syncproto"
)

func FuzzDecode(f *testing.F) {
	for _, frame := range validFrames {
		f.Add([]byte(frame))
	}
	for _, frame := range []string{
		``, `{}`, `null`, `[]`, `{"type":"ping"}`, `{"type":"ping","ping":{},"pull":{}}`,
		`{"type":"hello","hello":{"protocol":2,"device":"` + nodeA + `","token":""}}`,
		pushOf(2, putMutation(mutID, "notes", "title", ` { "a" : "<&>" } `)),
		pushOf(1, putMutation(mutID, "notes", "t", `"\ud800\u00e9"`)),
		`{"type":"page","page":{"changes":[{"collection":"c","id":"i","seq":1,"data":{"*":"\u003c"},"stamps":{"*":"` + stamp + `"}}],"cursors":{}}}`,
		`{"TYPE":"pong","Ping":{"time":-1},"re":18446744073709551615}`,
		`{"type":"error","error":{"code":"x","message":"\udc00"}}`,
	} {
		f.Add([]byte(frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := syncproto.Decode(frame)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned a message and error %v", err)
			}
			switch syncproto.ErrorCode(err) {
			case syncproto.CodeBadMessage, syncproto.CodeTooLarge, syncproto.CodeProtocolUnsupported:
			default:
				t.Fatalf("Decode error %v has code %q", err, syncproto.ErrorCode(err))
			}
			return
		}
		enc, err := syncproto.Encode(m)
		if err != nil {
			t.Fatalf("Encode of decoded %q: %v", frame, err)
		}
		m2, err := syncproto.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%q))) = %v; encoded %s", frame, err, enc)
		}
		if m2.Type != m.Type || m2.Re != m.Re {
			t.Fatalf("round trip changed type/re: %q/%d -> %q/%d", m.Type, m.Re, m2.Type, m2.Re)
		}
		enc2, err := syncproto.Encode(m2)
		if err != nil {
			t.Fatalf("second Encode: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

func FuzzParseStamp(f *testing.F) {
	for _, s := range []string{
		"", stamp, strings.ToUpper(stamp), stamp[:47], stamp + "0", "ffffffffffffffff" + nodeA,
		"000000000000000000000000000000000000000000000000", "+00000000000" + stamp[12:], "0x" + stamp[2:],
		"____________" + stamp[12:],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := syncproto.ParseStamp(text)
		if err != nil {
			if !errors.Is(err, syncproto.ErrBadMessage) {
				t.Fatalf("ParseStamp(%q) error %v does not wrap ErrBadMessage", text, err)
			}
			return
		}
		if got := s.String(); got != text {
			t.Fatalf("ParseStamp(%q).String() = %q", text, got)
		}
		if text != "" && (!syncproto.ValidNode(s.Node) || s.Wall < 0 || s.Wall >= 1<<48) {
			t.Fatalf("ParseStamp(%q) = %+v out of range", text, s)
		}
		b, err := s.MarshalText()
		if err != nil || string(b) != text {
			t.Fatalf("MarshalText = %q, %v; want %q", b, err, text)
		}
	})
}

func FuzzDecodeStamps(f *testing.F) {
	s1 := syncproto.Stamp{Wall: 100, Node: nodeA}.String()
	s2 := syncproto.Stamp{Wall: 200, Counter: 3, Node: nodeB}.String()
	f.Add(`{"*":"`+s1+`"}`, "a,b")
	f.Add(`{"*":"`+s1+`","b":"`+s2+`"}`, "a,b")
	f.Add(`{"a":"`+s1+`","b":"`+s2+`"}`, "a,b")
	f.Add(`{"a":"`+s1+`"}`, "a,b")
	f.Add(`{"*":"`+s1+`","z":"`+s1+`"}`, "a")
	f.Add(`{"*":""}`, "a")
	f.Add(`{}`, "")
	f.Add(`null`, "a")
	f.Add(`{"*":1}`, "a")
	f.Add(`{"a":"`+s1+`","a":"`+s2+`"}`, "a")
	f.Fuzz(func(t *testing.T, raw string, fields string) {
		data := map[string]json.RawMessage{}
		for _, name := range strings.Split(fields, ",") {
			if syncproto.ValidName(name) {
				data[name] = json.RawMessage(`1`)
			}
		}
		out, err := syncproto.DecodeStamps([]byte(raw), data)
		if err != nil {
			if !errors.Is(err, syncproto.ErrBadMessage) {
				t.Fatalf("DecodeStamps(%q) error %v does not wrap ErrBadMessage", raw, err)
			}
			return
		}
		if len(out) != len(data) {
			t.Fatalf("DecodeStamps(%q) = %d stamps for %d fields", raw, len(out), len(data))
		}
		for f, s := range out {
			if _, ok := data[f]; !ok || s.IsZero() {
				t.Fatalf("DecodeStamps(%q): field %q stamp %v", raw, f, s)
			}
		}
		enc := syncproto.EncodeStamps(out)
		back, err := syncproto.DecodeStamps(enc, data)
		if err != nil {
			t.Fatalf("DecodeStamps(EncodeStamps(%v)) = %v; encoded %s", out, err, enc)
		}
		if len(back) != len(out) {
			t.Fatalf("round trip through %s: %v -> %v", enc, out, back)
		}
		for f, s := range out {
			if back[f] != s {
				t.Fatalf("round trip through %s: %v -> %v", enc, out, back)
			}
		}
		if again := syncproto.EncodeStamps(back); !bytes.Equal(again, enc) {
			t.Fatalf("EncodeStamps not stable: %s vs %s", enc, again)
		}
	})
}

// byteSource turns fuzz input into a deterministic sequence of choices; it
// yields zeros once the input runs out.
type byteSource struct{ b []byte }

func (s *byteSource) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteSource) stamp() syncproto.Stamp {
	c := s.next()
	if c == 0xff {
		return syncproto.Stamp{}
	}
	return syncproto.Stamp{Wall: int64(c%8) + 1, Counter: uint16(c>>3) & 1, Node: genNodes[int(c>>4)%len(genNodes)]}
}

func (s *byteSource) value() json.RawMessage {
	c := s.next()
	if c < 0xf0 {
		return json.RawMessage(genValues[int(c)%len(genValues)])
	}
	// Raw bytes: Merge compares values as bytes and must stay deterministic
	// even for input no validated mutation would carry.
	n := int(c & 0x7)
	v := make([]byte, 0, n)
	for range n {
		v = append(v, s.next())
	}
	return v
}

// record derives a record; unless normalize, fields may sit at or below the
// tombstone and stamps may be zero, as in corrupt stored state.
func (s *byteSource) record(normalize bool) syncproto.Record {
	rec := syncproto.Record{Data: map[string]json.RawMessage{}, Stamps: map[string]syncproto.Stamp{}}
	flags := s.next()
	if flags&1 != 0 {
		rec.Deleted = s.stamp()
	}
	for i, f := range genFields {
		if flags&(2<<i) == 0 {
			continue
		}
		st, v := s.stamp(), s.value()
		if normalize && !st.After(rec.Deleted) {
			continue
		}
		rec.Data[f], rec.Stamps[f] = v, st
	}
	return rec
}

func (s *byteSource) mutation() syncproto.Mutation {
	flags := s.next()
	st := s.stamp()
	if st.IsZero() {
		st = syncproto.Stamp{Wall: 1, Node: nodeA}
	}
	m := syncproto.Mutation{ID: mutID, Collection: "c", Record: "r", Op: syncproto.OpPut, Stamp: st, Base: map[string]syncproto.Stamp{}}
	if flags&1 != 0 {
		m.Op = syncproto.OpDelete
	} else {
		m.Data = map[string]json.RawMessage{}
		for i, f := range genFields {
			if flags&(2<<i) != 0 || (i == 0 && flags&0xe == 0) {
				m.Data[f] = s.value()
			}
		}
	}
	for i, f := range genFields {
		if flags&(0x10<<i) != 0 {
			m.Base[f] = s.stamp()
		}
	}
	return m
}

var fuzzRecordSeeds = [][]byte{
	{},
	{0x0f, 0x11, 0x23, 0x01, 0x45, 0x02, 0x67, 0x03, 0x0f, 0x11, 0x23, 0x01, 0x45, 0x02, 0x67, 0x03},
	{0x0e, 0x21, 0x00, 0x21, 0x01, 0x21, 0xf3, 'a', 'b', 'c', 0x0e, 0x21, 0xf3, 'a', 'b', 'd', 0x21, 0x01},
	{0x07, 0x05, 0x04, 0x00, 0x03, 0x07, 0x05, 0x06, 0x01, 0x0f, 0xff, 0x02, 0x01},
	{0x01, 0x37, 0x0e, 0x16, 0x00, 0x16, 0x01, 0x16, 0x02, 0x0b, 0x36, 0x02, 0x27, 0x03},
}

func FuzzMerge(f *testing.F) {
	for _, seed := range fuzzRecordSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		src := &byteSource{b: in}
		a, b, c := src.record(false), src.record(false), src.record(false)
		ab, ba := syncproto.Merge(a, b), syncproto.Merge(b, a)
		if !ab.Equal(ba) {
			t.Fatalf("not commutative\na = %s\nb = %s\nab = %s\nba = %s",
				recordString(a), recordString(b), recordString(ab), recordString(ba))
		}
		left, right := syncproto.Merge(ab, c), syncproto.Merge(a, syncproto.Merge(b, c))
		if !left.Equal(right) {
			t.Fatalf("not associative\na = %s\nb = %s\nc = %s\n(ab)c = %s\na(bc) = %s",
				recordString(a), recordString(b), recordString(c), recordString(left), recordString(right))
		}
		// Merge normalises: its output is a fixed point of merging with
		// itself and with either input.
		for _, x := range []syncproto.Record{ab, left} {
			checkTombstoneInvariant(t, x)
			if xx := syncproto.Merge(x, x); !xx.Equal(x) {
				t.Fatalf("not idempotent\nx = %s\nxx = %s", recordString(x), recordString(xx))
			}
		}
		if abb := syncproto.Merge(ab, b); !abb.Equal(ab) {
			t.Fatalf("Merge(Merge(a, b), b) != Merge(a, b)\nab = %s\nabb = %s", recordString(ab), recordString(abb))
		}
		if aa := syncproto.Merge(a, a); !syncproto.Merge(aa, a).Equal(aa) {
			t.Fatalf("Merge(Merge(a, a), a) != Merge(a, a) for a = %s", recordString(a))
		}
	})
}

func FuzzApply(f *testing.F) {
	for _, seed := range fuzzRecordSeeds {
		f.Add(seed)
		f.Add(append([]byte{0x80}, seed...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		src := &byteSource{b: in}
		normalized := src.next()&0x80 == 0
		cur := src.record(normalized)
		m := src.mutation()
		next, changed, conflicts := syncproto.Apply(cur, m)
		if want := syncproto.Merge(cur, m.AsRecord()); !next.Equal(want) {
			t.Fatalf("Apply != Merge(cur, AsRecord)\ncur = %s\nm = %s\napply = %s\nmerge = %s",
				recordString(cur), mutationString(m), recordString(next), recordString(want))
		}
		if changed != !next.Equal(cur) {
			t.Fatalf("changed = %v but next.Equal(cur) = %v", changed, next.Equal(cur))
		}
		checkTombstoneInvariant(t, next)
		if normalized {
			checkConflicts(t, cur, m, next, conflicts)
		}
	})
}

// FuzzDecompress feeds binary frames to Decompress and what it returns to
// Decode: neither may panic, and nothing over MaxFrameBytes comes out.
func FuzzDecompress(f *testing.F) {
	for _, frame := range validFrames {
		z, err := syncproto.Compress(nil, []byte(frame))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(z)
	}
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd}) // the magic number alone
	f.Fuzz(func(t *testing.T, frame []byte) {
		out, err := syncproto.Decompress(frame)
		if err != nil {
			if out != nil {
				t.Fatalf("Decompress returned %d bytes and error %v", len(out), err)
			}
			switch syncproto.ErrorCode(err) {
			case syncproto.CodeBadMessage, syncproto.CodeTooLarge:
			default:
				t.Fatalf("Decompress error %v has code %q", err, syncproto.ErrorCode(err))
			}
			return
		}
		if len(out) > syncproto.MaxFrameBytes {
			t.Fatalf("Decompress returned %d bytes", len(out))
		}
		_, _ = syncproto.Decode(out)
	})
}
