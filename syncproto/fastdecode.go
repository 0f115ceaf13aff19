package syncproto

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The fast parsers read the frames that carry bulk — pages and push
// results (what a client receives) and pushes (what a server receives) —
// in exactly the form this package and the Go client write them, without
// encoding/json's reflection. They report false for anything else, and
// Decode then parses the frame with encoding/json; fuzz tests check the two
// agree. Every raw value is checked to be valid JSON. The messages they
// return alias frame.

// decodePage parses a page or changes frame as appendPage writes it.
func decodePage(frame []byte) (*Message, bool) {
	p := fastParser{b: frame}
	m := &Message{}
	switch {
	case p.lit(`{"type":"page"`):
		m.Type = TypePage
	case p.lit(`{"type":"changes"`):
		m.Type = TypeChanges
	default:
		return nil, false
	}
	m.Page = &Page{Changes: make([]Change, 0, itemsIn(frame, `{"collection":`, MaxPage))}
	ok := p.re(m) && p.lit(`,"page":{"changes":[`) && p.list(`]`, func() bool {
		c, ok := p.change()
		m.Page.Changes = append(m.Page.Changes, c)
		return ok
	}) && p.lit(`,"cursors":{`)
	if !ok {
		return nil, false
	}
	if m.Page.Cursors, ok = members(&p, p.int64, nil); !ok {
		return nil, false
	}
	m.Page.More = p.lit(`,"more":true`)
	return m, p.end(`}}`)
}

// decodePush parses a push frame as the Go client writes it: each mutation
// as encoding/json writes a Mutation.
func decodePush(frame []byte) (*Message, bool) {
	p := fastParser{b: frame}
	if !p.lit(`{"type":"push"`) {
		return nil, false
	}
	m := &Message{Type: TypePush, Push: &Push{Mutations: make([]Mutation, 0, itemsIn(frame, `{"id":`, MaxBatch))}}
	ok := p.re(m) && p.lit(`,"push":{"mutations":[`) && p.list(`]`, func() bool {
		mut, ok := p.mutation()
		m.Push.Mutations = append(m.Push.Mutations, mut)
		return ok
	})
	if !ok {
		return nil, false
	}
	return m, p.end(`}}`)
}

// decodeResult parses a result frame as encoding/json writes one whose
// results are all plain: an id, a status and a seq (applied and duplicate
// writes). A result with anything more — a stamp, a code, conflicts — is
// left to encoding/json.
func decodeResult(frame []byte) (*Message, bool) {
	p := fastParser{b: frame}
	if !p.lit(`{"type":"result"`) {
		return nil, false
	}
	m := &Message{Type: TypeResult, Result: &Result{Results: make([]MutationResult, 0, itemsIn(frame, `{"id":`, MaxBatch))}}
	ok := p.re(m) && p.lit(`,"result":{"results":[`) && p.list(`]`, func() bool {
		var r MutationResult
		var ok bool
		if !p.lit(`{"id":`) {
			return false
		}
		if r.ID, ok = p.plainString(); !ok || !p.lit(`,"status":`) {
			return false
		}
		switch { // the common statuses without allocating them
		case p.lit(`"applied"`):
			r.Status = StatusApplied
		case p.lit(`"duplicate"`):
			r.Status = StatusDuplicate
		default:
			status, ok := p.plainString()
			if !ok {
				return false
			}
			r.Status = Status(status)
		}
		if p.lit(`,"seq":`) {
			if r.Seq, ok = p.int64(); !ok {
				return false
			}
		}
		m.Result.Results = append(m.Result.Results, r)
		return p.lit(`}`)
	})
	if !ok {
		return nil, false
	}
	return m, p.end(`}}`)
}

// itemsIn estimates, for sizing a slice, how many items a frame holds: the
// times opening, with which each item starts, occurs, at most limit (what a
// message may hold). Appending items one by one grew a slice a quarter at a
// time, ~5 times its size in garbage; the count runs at ~8 GB/s.
func itemsIn(frame []byte, opening string, limit int) int {
	return min(bytes.Count(frame, []byte(opening)), limit)
}

type fastParser struct {
	b []byte
	i int
	// fields is how many fields the last mutation read set: the mutations
	// of a push mostly set as many, and a map sized for them is not
	// rebuilt as it grows (a push decodes ~20% faster).
	fields int
}

func (p *fastParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// end reads s, which must close the frame.
func (p *fastParser) end(s string) bool { return p.lit(s) && p.i == len(p.b) }

// re reads the optional request id.
func (p *fastParser) re(m *Message) bool {
	if !p.lit(`,"re":`) {
		return true
	}
	n, ok := p.uint()
	m.Re = n
	return ok
}

// list reads comma-separated items with item until the closing literal.
func (p *fastParser) list(closing string, item func() bool) bool {
	for i := 0; !p.lit(closing); i++ {
		if (i > 0 && !p.lit(`,`)) || !item() {
			return false
		}
	}
	return true
}

// members reads the members of an object whose "{" is already read, each
// value with read; duplicate keys (which encoding/json would merge) refuse.
// A non-nil size gives the map's initial size and is set to the number of
// members read.
func members[V any](p *fastParser, read func() (V, bool), size *int) (map[string]V, bool) {
	hint := 0
	if size != nil {
		hint = *size
	}
	out := make(map[string]V, hint)
	ok := p.list(`}`, func() bool {
		k, ok := p.plainString()
		if !ok || !p.lit(`:`) {
			return false
		}
		if _, dup := out[k]; dup {
			return false
		}
		out[k], ok = read()
		return ok
	})
	if size != nil {
		*size = len(out)
	}
	return out, ok
}

// uint reads a non-negative integer without leading zeros that fits int64.
func (p *fastParser) uint() (uint64, bool) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return uint64(n), err == nil
}

func (p *fastParser) int64() (int64, bool) {
	n, ok := p.uint()
	return int64(n), ok
}

// plainString reads a quoted string with no escapes and no control bytes.
func (p *fastParser) plainString() (string, bool) {
	if !p.lit(`"`) {
		return "", false
	}
	end := bytes.IndexByte(p.b[p.i:], '"')
	if end < 0 {
		return "", false
	}
	s := p.b[p.i : p.i+end]
	for _, c := range s {
		if c < 0x20 || c == '\\' {
			return "", false
		}
	}
	p.i += end + 1
	return string(s), true
}

// stamp reads a stamp in its quoted text form.
func (p *fastParser) stamp() (Stamp, bool) {
	text, ok := p.plainString()
	if !ok {
		return Stamp{}, false
	}
	s, err := ParseStamp(text)
	return s, err == nil
}

// object reads a JSON object.
func (p *fastParser) object() (json.RawMessage, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, false
	}
	return p.value()
}

// value reads one JSON value of any kind, checking it in the same pass.
// It takes compact JSON only: whitespace outside strings refuses the frame,
// which encoding/json then parses.
func (p *fastParser) value() (json.RawMessage, bool) {
	start := p.i
	if !p.skip(0) {
		return nil, false
	}
	return p.b[start:p.i], true
}

// maxDepth is encoding/json's nesting limit: deeper values are not valid.
const maxDepth = 10000

// skip reads a compact JSON value at nesting depth, reporting whether it
// is valid as json.Valid judges (FuzzValue compares them).
func (p *fastParser) skip(depth int) bool {
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.skipString()
	case c == '{' || c == '[':
		if depth++; depth > maxDepth {
			return false
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		p.i++
		for n := 0; ; n++ {
			if p.i < len(p.b) && p.b[p.i] == closing {
				p.i++
				return true
			}
			if n > 0 && !p.lit(",") {
				return false
			}
			if closing == '}' && (p.i >= len(p.b) || p.b[p.i] != '"' || !p.skipString() || !p.lit(":")) {
				return false
			}
			if !p.skip(depth) {
				return false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.skipNumber()
	default:
		return p.lit("true") || p.lit("false") || p.lit("null")
	}
}

// skipString reads a string: no control bytes, only JSON's escapes.
func (p *fastParser) skipString() bool {
	for p.i++; p.i < len(p.b); p.i++ {
		for p.i < len(p.b) && plainByte[p.b[p.i]] { // the run of bytes that need no look
			p.i++
		}
		if p.i == len(p.b) {
			break
		}
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return false
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if p.i+4 >= len(p.b) {
					return false
				}
				for _, h := range p.b[p.i+1 : p.i+5] {
					if !isHex(h) {
						return false
					}
				}
				p.i += 4
			default:
				return false
			}
		}
	}
	return false
}

// plainByte marks the bytes that stand for themselves inside a JSON string:
// all but control characters, the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// skipNumber reads a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *fastParser) skipNumber() bool {
	p.lit("-")
	switch {
	case p.lit("0"):
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return false
	}
	if p.lit(".") && !p.digits() {
		return false
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if !p.lit("+") {
			p.lit("-")
		}
		if !p.digits() {
			return false
		}
	}
	return true
}

// digits reads one or more decimal digits.
func (p *fastParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

func (p *fastParser) change() (Change, bool) {
	var c Change
	var ok bool
	if !p.lit(`{"collection":`) {
		return c, false
	}
	if c.Collection, ok = p.plainString(); !ok || !p.lit(`,"id":`) {
		return c, false
	}
	if c.ID, ok = p.plainString(); !ok || !p.lit(`,"seq":`) {
		return c, false
	}
	if c.Seq, ok = p.int64(); !ok {
		return c, false
	}
	if p.lit(`,"data":`) {
		if c.Data, ok = p.object(); !ok {
			return c, false
		}
	}
	if p.lit(`,"stamps":`) {
		if c.Stamps, ok = p.object(); !ok {
			return c, false
		}
	}
	if p.lit(`,"deleted":`) {
		if c.Deleted, ok = p.stamp(); !ok || c.Deleted.IsZero() {
			return c, false
		}
	}
	c.Gone = p.lit(`,"gone":true`)
	if p.lit(`,"scopes":[`) {
		c.Scopes = []string{}
		if !p.list(`]`, func() bool {
			sc, ok := p.plainString()
			c.Scopes = append(c.Scopes, sc)
			return ok
		}) || len(c.Scopes) == 0 {
			return c, false
		}
	}
	return c, p.lit(`}`)
}

func (p *fastParser) mutation() (Mutation, bool) {
	var m Mutation
	var ok bool
	if !p.lit(`{"id":`) {
		return m, false
	}
	if m.ID, ok = p.plainString(); !ok || !p.lit(`,"collection":`) {
		return m, false
	}
	if m.Collection, ok = p.plainString(); !ok || !p.lit(`,"record":`) {
		return m, false
	}
	if m.Record, ok = p.plainString(); !ok || !p.lit(`,"op":`) {
		return m, false
	}
	op, ok := p.plainString()
	if !ok {
		return m, false
	}
	m.Op = Op(op)
	if p.lit(`,"data":{`) {
		if m.Data, ok = members(p, p.value, &p.fields); !ok {
			return m, false
		}
		m.jsonKnown = true // value checked each one as it read it
	}
	if !p.lit(`,"stamp":`) {
		return m, false
	}
	if m.Stamp, ok = p.stamp(); !ok {
		return m, false
	}
	if p.lit(`,"base":{`) {
		if m.Base, ok = members(p, p.stamp, nil); !ok {
			return m, false
		}
	}
	return m, p.lit(`}`)
}
