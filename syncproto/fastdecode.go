package syncproto

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// decodePage parses a page or changes frame in exactly the form appendPage
// writes — the bulk of what a client receives — without encoding/json's
// reflection. It reports false for anything else, and Decode then parses
// the frame with encoding/json, so the two must agree (fuzz_test.go checks
// that they do). Every change's data and stamps are checked to be valid
// JSON. The returned message aliases frame.
func decodePage(frame []byte) (*Message, bool) {
	p := pageParser{b: frame}
	m := &Message{Page: &Page{}}
	switch {
	case p.lit(`{"type":"page"`):
		m.Type = TypePage
	case p.lit(`{"type":"changes"`):
		m.Type = TypeChanges
	default:
		return nil, false
	}
	if p.lit(`,"re":`) {
		n, ok := p.uint()
		if !ok {
			return nil, false
		}
		m.Re = n
	}
	if !p.lit(`,"page":{"changes":[`) {
		return nil, false
	}
	for i := 0; !p.lit(`]`); i++ {
		if i > 0 && !p.lit(`,`) {
			return nil, false
		}
		c, ok := p.change()
		if !ok {
			return nil, false
		}
		m.Page.Changes = append(m.Page.Changes, c)
	}
	if !p.lit(`,"cursors":{`) {
		return nil, false
	}
	m.Page.Cursors = map[string]int64{}
	for i := 0; !p.lit(`}`); i++ {
		if i > 0 && !p.lit(`,`) {
			return nil, false
		}
		scope, ok := p.plainString()
		if !ok || !p.lit(`:`) {
			return nil, false
		}
		if _, dup := m.Page.Cursors[scope]; dup {
			return nil, false
		}
		n, ok := p.uint()
		if !ok {
			return nil, false
		}
		m.Page.Cursors[scope] = int64(n)
	}
	if p.lit(`,"more":true`) {
		m.Page.More = true
	}
	if !p.lit(`}}`) || p.i != len(p.b) {
		return nil, false
	}
	return m, true
}

type pageParser struct {
	b []byte
	i int
}

func (p *pageParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// uint reads a non-negative integer without leading zeros that fits int64.
func (p *pageParser) uint() (uint64, bool) {
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

// plainString reads a quoted string with no escapes and no control bytes.
func (p *pageParser) plainString() (string, bool) {
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

// object reads a JSON object and checks it is valid.
func (p *pageParser) object() (json.RawMessage, bool) {
	start, depth, inString := p.i, 0, false
	for ; p.i < len(p.b); p.i++ {
		c := p.b[p.i]
		if inString {
			switch c {
			case '\\':
				p.i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				p.i++
				raw := p.b[start:p.i]
				return raw, raw[0] == '{' && json.Valid(raw)
			}
		}
	}
	return nil, false
}

func (p *pageParser) change() (Change, bool) {
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
	seq, ok := p.uint()
	if !ok {
		return c, false
	}
	c.Seq = int64(seq)
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
		text, ok := p.plainString()
		if !ok {
			return c, false
		}
		if c.Deleted, ok = parseStampOK(text); !ok || c.Deleted.IsZero() {
			return c, false
		}
	}
	if p.lit(`,"gone":true`) {
		c.Gone = true
	}
	return c, p.lit(`}`)
}

func parseStampOK(text string) (Stamp, bool) {
	s, err := ParseStamp(text)
	return s, err == nil
}

// decodePush parses a push frame in exactly the form the Go client writes —
// each mutation as encoding/json writes a Mutation — without reflection. It
// reports false for anything else, and Decode falls back to encoding/json;
// fuzz_test.go checks the two agree. The message aliases frame.
func decodePush(frame []byte) (*Message, bool) {
	p := pageParser{b: frame}
	m := &Message{Type: TypePush, Push: &Push{}}
	if !p.lit(`{"type":"push"`) {
		return nil, false
	}
	if p.lit(`,"re":`) {
		n, ok := p.uint()
		if !ok {
			return nil, false
		}
		m.Re = n
	}
	if !p.lit(`,"push":{"mutations":[`) {
		return nil, false
	}
	for i := 0; !p.lit(`]`); i++ {
		if i > 0 && !p.lit(`,`) {
			return nil, false
		}
		mut, ok := p.mutation()
		if !ok {
			return nil, false
		}
		m.Push.Mutations = append(m.Push.Mutations, mut)
	}
	if !p.lit(`}}`) || p.i != len(p.b) {
		return nil, false
	}
	return m, true
}

func (p *pageParser) mutation() (Mutation, bool) {
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
		m.Data = map[string]json.RawMessage{}
		for i := 0; !p.lit(`}`); i++ {
			if i > 0 && !p.lit(`,`) {
				return m, false
			}
			f, ok := p.plainString()
			if !ok || !p.lit(`:`) {
				return m, false
			}
			if _, dup := m.Data[f]; dup {
				return m, false
			}
			v, ok := p.value()
			if !ok {
				return m, false
			}
			m.Data[f] = v
		}
	}
	if !p.lit(`,"stamp":`) {
		return m, false
	}
	text, ok := p.plainString()
	if !ok {
		return m, false
	}
	if m.Stamp, ok = parseStampOK(text); !ok {
		return m, false
	}
	if p.lit(`,"base":{`) {
		m.Base = map[string]Stamp{}
		for i := 0; !p.lit(`}`); i++ {
			if i > 0 && !p.lit(`,`) {
				return m, false
			}
			f, ok := p.plainString()
			if !ok || !p.lit(`:`) {
				return m, false
			}
			if _, dup := m.Base[f]; dup {
				return m, false
			}
			text, ok := p.plainString()
			if !ok {
				return m, false
			}
			if m.Base[f], ok = parseStampOK(text); !ok {
				return m, false
			}
		}
	}
	return m, p.lit(`}`)
}

// value reads one JSON value of any kind and checks it is valid.
func (p *pageParser) value() (json.RawMessage, bool) {
	start, depth, inString := p.i, 0, false
	for ; p.i < len(p.b); p.i++ {
		c := p.b[p.i]
		if inString {
			switch c {
			case '\\':
				p.i++
			case '"':
				inString = false
				if depth == 0 {
					p.i++
					return p.valid(start)
				}
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the end of the enclosing object: a scalar ends here
				return p.valid(start)
			}
			depth--
			if depth == 0 {
				p.i++
				return p.valid(start)
			}
		case ',':
			if depth == 0 {
				return p.valid(start)
			}
		}
	}
	return nil, false
}

func (p *pageParser) valid(start int) (json.RawMessage, bool) {
	raw := p.b[start:p.i]
	if len(raw) == 0 || isSpace(raw[0]) || isSpace(raw[len(raw)-1]) {
		return nil, false // encoding/json would trim it: leave such frames to it
	}
	return raw, json.Valid(raw)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
