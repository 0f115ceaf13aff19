package syncproto

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
)

// Record is the replicated state of one record: the value and stamp of each
// visible field, and the stamp of the latest delete (zero if never deleted).
//
// A field is visible only if its stamp is newer than Deleted, so a delete
// clears every field written before it and a later write starts the record
// afresh. Merge keeps that invariant: fields at or below Deleted are dropped.
type Record struct {
	Data    map[string]json.RawMessage
	Stamps  map[string]Stamp
	Deleted Stamp
}

// Exists reports whether the record has any visible field.
func (r Record) Exists() bool { return len(r.Data) > 0 }

// Equal reports whether r and s hold the same fields, values, stamps and
// tombstone. Values are compared as bytes; both sides are expected to be
// compact JSON, as every value that passed Validate is.
func (r Record) Equal(s Record) bool {
	if r.Deleted != s.Deleted || len(r.Data) != len(s.Data) {
		return false
	}
	for f, v := range r.Data {
		w, ok := s.Data[f]
		if !ok || !bytes.Equal(v, w) || r.Stamps[f] != s.Stamps[f] {
			return false
		}
	}
	return true
}

// Version is one side of a conflict: a value (or a delete) and its stamp.
type Version struct {
	Value   json.RawMessage `json:"value,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
	Stamp   Stamp           `json:"stamp"`
}

// Conflict records two concurrent writes to one field: neither writer had seen
// the other's value. Winner is the one with the greater stamp, now in the
// record; Loser is kept so a person can review it.
type Conflict struct {
	Field  string  `json:"field"`
	Winner Version `json:"winner"`
	Loser  Version `json:"loser"`
}

// field returns what r says about field f: its value and stamp, or the
// tombstone stamp if a delete cleared it, or the zero stamp if never written.
func (r Record) field(f string) (json.RawMessage, Stamp, bool) {
	if v, ok := r.Data[f]; ok {
		return v, r.Stamps[f], false
	}
	if !r.Deleted.IsZero() {
		return nil, r.Deleted, true
	}
	return nil, Stamp{}, false
}

// FieldStamp returns the stamp a writer records as the base of field f: the
// stamp of the value it sees, the tombstone if a delete cleared the field, or
// the zero stamp.
func (r Record) FieldStamp(f string) Stamp {
	_, s, _ := r.field(f)
	return s
}

// Merge returns the join of a and b: the newer tombstone, and for each field
// the version with the greater stamp, keeping only fields newer than the
// tombstone. It never modifies a or b.
//
// Merge is commutative, associative and idempotent (merge_test.go checks
// this by property tests and fuzzing), so replicas that have merged the same
// states hold the same record whatever the order or repetition.
func Merge(a, b Record) Record {
	out := Record{
		Data:    make(map[string]json.RawMessage, max(len(a.Data), len(b.Data))),
		Stamps:  make(map[string]Stamp, max(len(a.Data), len(b.Data))),
		Deleted: a.Deleted,
	}
	if b.Deleted.After(out.Deleted) {
		out.Deleted = b.Deleted
	}
	take := func(f string, v json.RawMessage, s Stamp) {
		if !s.After(out.Deleted) {
			return
		}
		if cur, ok := out.Data[f]; ok {
			switch out.Stamps[f].Compare(s) {
			case 1:
				return
			case 0: // one write seen twice; differing bytes would be corrupt input: stay deterministic
				if bytes.Compare(cur, v) >= 0 {
					return
				}
			}
		}
		out.Data[f] = v
		out.Stamps[f] = s
	}
	for f, v := range a.Data {
		take(f, v, a.Stamps[f])
	}
	for f, v := range b.Data {
		take(f, v, b.Stamps[f])
	}
	return out
}

// Apply applies mutation m to the current state cur. It returns the new state,
// whether anything changed, and the conflicts m met: for every field m writes
// (or, for a delete, every visible field) whose current version was written by
// another node and is not the version m's writer saw (m.Base), the loser of
// the two is reported. A write that repeats the current value is no conflict.
//
// The new state is Merge(cur, m.AsRecord()), so the order in which a server
// applies concurrent mutations does not change the result. The conflicts
// reported can depend on that order — each is judged against the version
// current when the mutation arrives — but a losing version is never dropped
// without either a conflict naming it or a later write whose writer saw it.
func Apply(cur Record, m Mutation) (Record, bool, []Conflict) {
	if len(cur.Data) == 0 && cur.Deleted.IsZero() && !m.Stamp.IsZero() { // a new record: nothing to meet
		next := m.AsRecord()
		return next, next.Exists() || !next.Deleted.IsZero(), nil
	}
	var conflicts []Conflict
	incoming := func(v json.RawMessage) Version {
		if m.Op == OpDelete {
			return Version{Deleted: true, Stamp: m.Stamp}
		}
		return Version{Value: v, Stamp: m.Stamp}
	}
	check := func(f string, v json.RawMessage) {
		cv, cs, cdel := cur.field(f)
		if cs.IsZero() || cs.Node == m.Stamp.Node || cs == m.Base[f] {
			return
		}
		if m.Op == OpPut && !cdel && jsonEqual(cv, v) {
			return
		}
		old, in := Version{Value: cv, Deleted: cdel, Stamp: cs}, incoming(v)
		if m.Stamp.After(cs) {
			conflicts = append(conflicts, Conflict{Field: f, Winner: in, Loser: old})
		} else {
			conflicts = append(conflicts, Conflict{Field: f, Winner: old, Loser: in})
		}
	}
	if m.Op == OpDelete {
		for _, f := range slices.Sorted(maps.Keys(cur.Data)) {
			check(f, nil)
		}
	} else {
		for _, f := range slices.Sorted(maps.Keys(m.Data)) {
			check(f, m.Data[f])
		}
	}
	next := Merge(cur, m.AsRecord())
	return next, !next.Equal(cur), conflicts
}

func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// EncodeStamps returns the stamps of r in their stored and wire form: a JSON
// object from field to stamp, where the key "*" holds the stamp most fields
// share and only fields with another stamp are listed. A record written by one
// Put has a single entry. The output is deterministic.
func EncodeStamps(stamps map[string]Stamp) []byte {
	if len(stamps) == 0 {
		return []byte("{}")
	}
	var first Stamp
	same := true
	for _, s := range stamps {
		if first.IsZero() {
			first = s
		} else if s != first {
			same = false
			break
		}
	}
	if same { // one write set every field: the common case
		b := make([]byte, 0, 8+16+len(first.Node))
		b = append(b, `{"*":"`...)
		b = first.appendText(b)
		return append(b, '"', '}')
	}
	count := make(map[Stamp]int, 2)
	var common Stamp
	for _, s := range stamps {
		count[s]++
		if n := count[s]; n > count[common] || (n == count[common] && s.After(common)) {
			common = s
		}
	}
	b := make([]byte, 0, 64)
	b = append(b, `{"*":"`...)
	b = common.appendText(b)
	b = append(b, '"')
	for _, f := range slices.Sorted(maps.Keys(stamps)) {
		if s := stamps[f]; s != common {
			b = append(b, ',')
			b, _ = appendJSONString(b, f)
			b = append(b, ':', '"')
			b = s.appendText(b)
			b = append(b, '"')
		}
	}
	return append(b, '}')
}

// DecodeStamps expands the form EncodeStamps writes into one stamp per field
// of data. Errors wrap ErrBadMessage.
func DecodeStamps(raw []byte, data map[string]json.RawMessage) (map[string]Stamp, error) {
	var enc map[string]Stamp
	if err := json.Unmarshal(raw, &enc); err != nil {
		return nil, &Error{Code: CodeBadMessage, Message: "stamps", Err: err}
	}
	common, hasCommon := enc["*"]
	out := make(map[string]Stamp, len(data))
	for f := range data {
		s, ok := enc[f]
		if !ok {
			if !hasCommon {
				return nil, Errorf(CodeBadMessage, "stamps: no stamp for field %q", f)
			}
			s = common
		}
		if s.IsZero() {
			return nil, Errorf(CodeBadMessage, "stamps: zero stamp for field %q", f)
		}
		out[f] = s
	}
	for f := range enc {
		if _, ok := data[f]; !ok && f != "*" {
			return nil, Errorf(CodeBadMessage, "stamps: stamp for absent field %q", f)
		}
	}
	return out, nil
}

// EncodeData returns the fields' values as one compact JSON object with sorted
// keys: the stored and wire form of a record's data.
func EncodeData(data map[string]json.RawMessage) []byte {
	size := 2
	keys := make([]string, 0, len(data))
	for f, v := range data {
		keys = append(keys, f)
		size += len(f) + len(v) + 4
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, f := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b, _ = appendJSONString(b, f)
		b = append(b, ':')
		b = append(b, data[f]...)
	}
	return append(b, '}')
}

// DecodeData parses a record's data object. Errors wrap ErrBadMessage.
func DecodeData(raw []byte) (map[string]json.RawMessage, error) {
	var data map[string]json.RawMessage
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil, &Error{Code: CodeBadMessage, Message: "data", Err: err}
	}
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	return data, nil
}

func appendJSONString(b []byte, s string) ([]byte, error) {
	if ValidName(s) { // field names need no escaping
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"'), nil
	}
	q, err := json.Marshal(s)
	return append(b, q...), err
}
