package syncproto

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// NodeLen is the length of a node identifier: 32 lowercase hexadecimal
// digits (a UUID without its hyphens). Every replica and the server have one.
const NodeLen = 32

// MaxFuture bounds how far ahead of the server's clock a stamp may be when the
// server applies it. A stamp further ahead comes from a device whose clock is
// wrong; the server replaces it with a stamp from its own clock (see
// Clock.Admit), so a tablet set a year ahead does not win every conflict for a
// year. Clock.Observe also caps a jump at this much past physical time; a
// write still orders after the versions its writer saw (Clock.NowAfter).
const MaxFuture = 5 * time.Minute

// Stamp is a hybrid logical clock timestamp with the node that made it. Stamps
// are totally ordered: by Wall, then Counter, then Node. Every write carries
// one; the greater stamp wins a conflict.
//
// Its text form is 12 hex digits of Wall, 4 of Counter and the node, so that
// comparing two text forms as strings orders them like Compare does.
type Stamp struct {
	Wall    int64  // milliseconds since the Unix epoch
	Counter uint16 // logical counter within one millisecond
	Node    string // NodeLen lowercase hex digits
}

// IsZero reports whether s is the zero stamp, which is older than every other.
func (s Stamp) IsZero() bool { return s.Wall == 0 && s.Counter == 0 && s.Node == "" }

// Compare returns -1, 0 or +1 as s is older than, equal to or newer than t.
func (s Stamp) Compare(t Stamp) int {
	switch {
	case s.Wall != t.Wall:
		return cmpInt(s.Wall, t.Wall)
	case s.Counter != t.Counter:
		return cmpInt(int64(s.Counter), int64(t.Counter))
	case s.Node < t.Node:
		return -1
	case s.Node > t.Node:
		return 1
	}
	return 0
}

// After reports whether s is newer than t.
func (s Stamp) After(t Stamp) bool { return s.Compare(t) > 0 }

func cmpInt(a, b int64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// Time returns the wall-clock part of s.
func (s Stamp) Time() time.Time { return time.UnixMilli(s.Wall).UTC() }

// String returns the text form of s; the zero stamp is "".
func (s Stamp) String() string {
	if s.IsZero() {
		return ""
	}
	return string(s.appendText(make([]byte, 0, 16+len(s.Node))))
}

func (s Stamp) appendText(b []byte) []byte {
	const hexdigits = "0123456789abcdef"
	w := uint64(s.Wall)
	for i := 11; i >= 0; i-- {
		b = append(b, hexdigits[(w>>(uint(i)*4))&0xf])
	}
	c := s.Counter
	for i := 3; i >= 0; i-- {
		b = append(b, hexdigits[(c>>(uint(i)*4))&0xf])
	}
	return append(b, s.Node...)
}

// MarshalText implements encoding.TextMarshaler.
func (s Stamp) MarshalText() ([]byte, error) {
	if s.IsZero() {
		return []byte{}, nil
	}
	return s.appendText(make([]byte, 0, 16+len(s.Node))), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts "" as the zero
// stamp and returns an error wrapping ErrBadMessage for anything malformed.
func (s *Stamp) UnmarshalText(b []byte) error {
	p, err := ParseStamp(string(b))
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// ParseStamp parses the text form of a stamp. "" is the zero stamp. Errors
// wrap ErrBadMessage.
func ParseStamp(text string) (Stamp, error) {
	if text == "" {
		return Stamp{}, nil
	}
	if len(text) != 16+NodeLen {
		return Stamp{}, Errorf(CodeBadMessage, "stamp %.60q: want %d characters", text, 16+NodeLen)
	}
	w, err := strconv.ParseUint(text[:12], 16, 48)
	if err != nil || !isLowerHex(text[:12]) {
		return Stamp{}, Errorf(CodeBadMessage, "stamp %q: bad wall time", text)
	}
	c, err := strconv.ParseUint(text[12:16], 16, 16)
	if err != nil || !isLowerHex(text[12:16]) {
		return Stamp{}, Errorf(CodeBadMessage, "stamp %q: bad counter", text)
	}
	if !ValidNode(text[16:]) {
		return Stamp{}, Errorf(CodeBadMessage, "stamp %q: bad node", text)
	}
	return Stamp{Wall: int64(w), Counter: uint16(c), Node: text[16:]}, nil
}

// NewNode returns a new random node identifier.
func NewNode() string {
	u := uuid.New()
	return hex.EncodeToString(u[:])
}

// ValidNode reports whether node is a well-formed node identifier.
func ValidNode(node string) bool { return len(node) == NodeLen && isLowerHex(node) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Clock is a hybrid logical clock for one node. It is safe for concurrent use.
//
// Its physical time is the machine's clock plus an offset the owner may set
// (a client learns it from the server's welcome), so a tablet whose clock is
// wrong stamps with corrected time once it has talked to the server.
type Clock struct {
	mu     sync.Mutex
	node   string
	now    func() time.Time
	offset time.Duration
	last   Stamp
}

// NewClock returns a clock for node. now is the physical clock; nil means
// time.Now.
func NewClock(node string, now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{node: node, now: now}
}

// Node returns the clock's node identifier.
func (c *Clock) Node() string { return c.node }

// SetOffset sets the correction added to the physical clock.
//
// If the clock's memory is now further ahead than MaxFuture — it ran on the
// wrong time before the correction — it is brought back to the corrected
// time, so the device stops stamping in the future. SetOffset reports
// whether it did; the owner should then re-stamp writes it has not sent.
func (c *Clock) SetOffset(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = d
	pt := c.physical()
	if c.last.Wall > pt+MaxFuture.Milliseconds() {
		c.last = Stamp{Wall: pt, Node: c.node}
		return true
	}
	return false
}

// Physical returns the corrected physical time in milliseconds.
func (c *Clock) Physical() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.physical()
}

func (c *Clock) physical() int64 { return c.now().Add(c.offset).UnixMilli() }

// Now returns a new stamp for a local event, greater than every stamp this
// clock has returned or observed.
func (c *Clock) Now() Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tick(c.physical())
}

func (c *Clock) tick(pt int64) Stamp {
	switch {
	case pt > c.last.Wall:
		c.last = Stamp{Wall: pt, Node: c.node}
	case c.last.Counter == 0xffff:
		c.last = Stamp{Wall: c.last.Wall + 1, Node: c.node}
	default:
		c.last = Stamp{Wall: c.last.Wall, Counter: c.last.Counter + 1, Node: c.node}
	}
	return c.last
}

// Observe advances the clock past a stamp received from elsewhere, so later
// local stamps order after it. A stamp more than MaxFuture ahead of physical
// time only advances the clock to that bound: one wrong clock cannot drag
// every other clock into the future.
func (c *Clock) Observe(s Stamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := c.physical() + MaxFuture.Milliseconds()
	if s.Wall > limit {
		s = Stamp{Wall: limit, Counter: 0xffff}
	}
	c.advance(s)
}

// Admit is the server's rule for a stamp arriving on a device's write. A stamp
// at most MaxFuture ahead of the server's physical time is kept and observed.
// A stamp further ahead is replaced by a fresh stamp of this clock carrying the
// writer's node, and Admit reports true: the write still happens, but it is
// ordered by when the server received it, not by the device's wrong clock.
func (c *Clock) Admit(s Stamp) (Stamp, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := c.physical()
	if s.Wall > pt+MaxFuture.Milliseconds() {
		t := c.tick(pt)
		return Stamp{Wall: t.Wall, Counter: t.Counter, Node: s.Node}, true
	}
	c.advance(s)
	return s, false
}

// Last returns the greatest stamp the clock has issued or observed.
func (c *Clock) Last() Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// NowAfter returns a new stamp for a local event that orders after every
// stamp in seen as well as after everything the clock has issued: a write
// must beat the versions its writer saw, even when the machine's clock is
// far behind them (a flat battery reset it). Unlike Observe it is not
// capped, so seen must hold stamps this node received from its server,
// which bounds them.
func (c *Clock) NowAfter(seen ...Stamp) Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range seen {
		c.advance(s)
	}
	return c.tick(c.physical())
}

// Restore sets the clock's memory after a restart, so stamps stay monotonic
// even if the machine's clock went back (a flat battery). It never moves the
// clock backwards.
func (c *Clock) Restore(last Stamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(last)
}

// advance moves the clock's memory up to s's time, if that is later; the
// node stays this clock's. The caller holds c.mu.
func (c *Clock) advance(s Stamp) {
	if s.Wall > c.last.Wall || (s.Wall == c.last.Wall && s.Counter > c.last.Counter) {
		c.last = Stamp{Wall: s.Wall, Counter: s.Counter, Node: c.node}
	}
}

// String implements fmt.Stringer for logs.
func (c *Clock) String() string { return fmt.Sprintf("clock(%s)", c.node) }
