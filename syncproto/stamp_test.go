package syncproto_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ponte-project/ponte/syncproto"
)

const (
	nodeA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	nodeB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	nodeC = "0123456789abcdef0123456789abcdef"
)

// fakeTime is a physical clock a test moves by hand.
type fakeTime struct{ t time.Time }

func newFakeTime() *fakeTime { return &fakeTime{t: time.UnixMilli(1_700_000_000_000)} }

func (f *fakeTime) Now() time.Time      { return f.t }
func (f *fakeTime) Add(d time.Duration) { f.t = f.t.Add(d) }
func (f *fakeTime) Millis() int64       { return f.t.UnixMilli() }

func (f *fakeTime) Clock(node string) *syncproto.Clock { return syncproto.NewClock(node, f.Now) }

func mustParseStamp(tb testing.TB, s string) syncproto.Stamp {
	tb.Helper()
	st, err := syncproto.ParseStamp(s)
	if err != nil {
		tb.Fatalf("ParseStamp(%q): %v", s, err)
	}
	return st
}

func TestParseStamp_RoundTrip(t *testing.T) {
	cases := []syncproto.Stamp{
		{Wall: 1, Node: nodeA},
		{Wall: 1_700_000_000_000, Counter: 7, Node: nodeB},
		{Wall: 1<<48 - 1, Counter: 0xffff, Node: nodeC},
		{Wall: 0, Counter: 1, Node: nodeA},
	}
	for _, s := range cases {
		t.Run(s.String(), func(t *testing.T) {
			text := s.String()
			if len(text) != 16+syncproto.NodeLen {
				t.Fatalf("String() = %q, want %d characters", text, 16+syncproto.NodeLen)
			}
			got, err := syncproto.ParseStamp(text)
			if err != nil {
				t.Fatalf("ParseStamp(%q): %v", text, err)
			}
			if got != s {
				t.Fatalf("ParseStamp(String()) = %+v, want %+v", got, s)
			}
			b, err := s.MarshalText()
			if err != nil || string(b) != text {
				t.Fatalf("MarshalText() = %q, %v; want %q", b, err, text)
			}
			var u syncproto.Stamp
			if err := u.UnmarshalText(b); err != nil || u != s {
				t.Fatalf("UnmarshalText(%q) = %+v, %v; want %+v", b, u, err, s)
			}
		})
	}
	t.Run("zero", func(t *testing.T) {
		var z syncproto.Stamp
		if z.String() != "" {
			t.Fatalf("zero String() = %q, want \"\"", z.String())
		}
		got, err := syncproto.ParseStamp("")
		if err != nil || !got.IsZero() {
			t.Fatalf("ParseStamp(\"\") = %+v, %v; want zero", got, err)
		}
	})
}

func randStamp(r *rand.Rand) syncproto.Stamp {
	nodes := []string{nodeA, nodeB, nodeC}
	// Small ranges so equal walls and counters are common; occasionally a
	// wall anywhere in the 48-bit range.
	wall := int64(r.IntN(4))
	if r.IntN(4) == 0 {
		wall = r.Int64N(1 << 48)
	}
	return syncproto.Stamp{Wall: wall, Counter: uint16(r.IntN(3)), Node: nodes[r.IntN(len(nodes))]}
}

func TestStamp_TextOrderMatchesCompare(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 0))
	for range 20000 {
		s, u := randStamp(r), randStamp(r)
		if s.IsZero() || u.IsZero() {
			continue
		}
		want := s.Compare(u)
		if got := strings.Compare(s.String(), u.String()); got != want {
			t.Fatalf("strings.Compare(%q, %q) = %d, Compare = %d", s, u, got, want)
		}
		if s.After(u) != (want > 0) {
			t.Fatalf("%v.After(%v) = %v, Compare = %d", s, u, s.After(u), want)
		}
		if u.Compare(s) != -want {
			t.Fatalf("Compare is not antisymmetric for %v, %v", s, u)
		}
	}
	t.Run("ZeroIsOldest", func(t *testing.T) {
		var z syncproto.Stamp
		if z.Compare(syncproto.Stamp{Counter: 0, Wall: 0, Node: nodeA}) != -1 {
			t.Fatal("zero stamp not older than a stamp at wall 0")
		}
	})
}

func TestParseStamp_RejectsMalformed(t *testing.T) {
	good := syncproto.Stamp{Wall: 1_700_000_000_000, Counter: 3, Node: nodeC}.String()
	cases := map[string]string{
		"TooShort":         good[:len(good)-1],
		"TooLong":          good + "0",
		"WallOnly":         good[:16],
		"UppercaseWall":    "018BCFE56800" + good[12:],
		"UppercaseCounter": good[:12] + "000A" + good[16:],
		"UppercaseNode":    good[:16] + strings.ToUpper(nodeC),
		"NonHexWall":       "01gbcfe56800" + good[12:],
		"SignInWall":       "+18bcfe56800" + good[12:],
		"SpaceInCounter":   good[:12] + " 003" + good[16:],
		"NonHexNode":       good[:16] + "z" + good[17:],
		"HyphenatedNode":   good[:16] + "01234567-89ab-cdef-0123-456789abcdef"[:32],
		"Unicode":          strings.Repeat("é", 24),
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := syncproto.ParseStamp(text)
			if err == nil {
				t.Fatalf("ParseStamp(%q) = %+v, want error", text, s)
			}
			if !errors.Is(err, syncproto.ErrBadMessage) {
				t.Fatalf("ParseStamp(%q) error %v does not wrap ErrBadMessage", text, err)
			}
			var u syncproto.Stamp
			if err := u.UnmarshalText([]byte(text)); !errors.Is(err, syncproto.ErrBadMessage) {
				t.Fatalf("UnmarshalText(%q) = %v, want ErrBadMessage", text, err)
			}
		})
	}
}

func TestClock_NowIsStrictlyMonotonic(t *testing.T) {
	t.Run("PhysicalClockGoesBackwards", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		prev := c.Now()
		steps := []time.Duration{time.Millisecond, 0, -time.Hour, time.Millisecond, -time.Second, 2 * time.Hour, 0, -24 * time.Hour}
		for i, d := range steps {
			ft.Add(d)
			for range 3 {
				s := c.Now()
				if !s.After(prev) {
					t.Fatalf("step %d (%v): Now() = %v, not after %v", i, d, s, prev)
				}
				if s.Node != nodeA {
					t.Fatalf("Now() node = %q, want %q", s.Node, nodeA)
				}
				prev = s
			}
		}
	})
	t.Run("UsesPhysicalTime", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		if s := c.Now(); s.Wall != ft.Millis() || s.Counter != 0 {
			t.Fatalf("Now() = %+v, want wall %d counter 0", s, ft.Millis())
		}
		if s := c.Now(); s.Wall != ft.Millis() || s.Counter != 1 {
			t.Fatalf("second Now() in one ms = %+v, want counter 1", s)
		}
	})
	t.Run("Offset", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		if c.SetOffset(time.Minute) {
			t.Fatal("SetOffset forward reported a reset")
		}
		if got, want := c.Physical(), ft.Millis()+time.Minute.Milliseconds(); got != want {
			t.Fatalf("Physical() = %d, want %d", got, want)
		}
		if s := c.Now(); s.Wall != ft.Millis()+time.Minute.Milliseconds() {
			t.Fatalf("Now() with offset = %+v", s)
		}
	})
}

func TestClock_NowCounterOverflowMovesToNextMillisecond(t *testing.T) {
	ft := newFakeTime()
	c := ft.Clock(nodeA)
	pt := ft.Millis()
	first := c.Now()
	if first.Wall != pt || first.Counter != 0 {
		t.Fatalf("first Now() = %+v", first)
	}
	prev := first
	for range 0xffff {
		s := c.Now()
		if !s.After(prev) {
			t.Fatalf("Now() = %+v, not after %+v", s, prev)
		}
		prev = s
	}
	if prev.Wall != pt || prev.Counter != 0xffff {
		t.Fatalf("after 65535 more ticks: %+v, want wall %d counter 0xffff", prev, pt)
	}
	next := c.Now()
	if next.Wall != pt+1 || next.Counter != 0 {
		t.Fatalf("tick past counter 0xffff = %+v, want wall %d counter 0", next, pt+1)
	}
	// The physical clock has not caught up; the clock keeps counting in the
	// borrowed millisecond.
	if s := c.Now(); s.Wall != pt+1 || s.Counter != 1 {
		t.Fatalf("next tick = %+v, want wall %d counter 1", s, pt+1)
	}
}

func TestClock_Observe(t *testing.T) {
	t.Run("AdvancesPastObserved", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		obs := syncproto.Stamp{Wall: ft.Millis() + 1000, Counter: 5, Node: nodeB}
		c.Observe(obs)
		if s := c.Now(); !s.After(obs) || s.Node != nodeA {
			t.Fatalf("Now() after Observe(%v) = %v", obs, s)
		}
	})
	t.Run("IgnoresOlder", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		a := c.Now()
		c.Observe(syncproto.Stamp{Wall: a.Wall - 10, Node: nodeB})
		if c.Last() != a {
			t.Fatalf("Last() = %v after observing an older stamp, want %v", c.Last(), a)
		}
	})
	t.Run("FarFutureIsBounded", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		limit := ft.Millis() + syncproto.MaxFuture.Milliseconds()
		far := syncproto.Stamp{Wall: ft.Now().Add(365 * 24 * time.Hour).UnixMilli(), Node: nodeB}
		c.Observe(far)
		if last := c.Last(); last.Wall > limit {
			t.Fatalf("Last() = %v (wall %d), beyond physical+MaxFuture %d", last, last.Wall, limit)
		}
		s := c.Now()
		if s.Wall > limit+1 {
			t.Fatalf("Now() after far-future Observe = wall %d, want <= %d", s.Wall, limit+1)
		}
		if s.After(far) {
			t.Fatalf("Now() = %v followed a stamp a year ahead", s)
		}
	})
	t.Run("AtBoundIsKept", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		at := syncproto.Stamp{Wall: ft.Millis() + syncproto.MaxFuture.Milliseconds(), Counter: 2, Node: nodeB}
		c.Observe(at)
		if s := c.Now(); !s.After(at) {
			t.Fatalf("Now() = %v, not after observed stamp at the bound %v", s, at)
		}
	})
}

func TestClock_Admit(t *testing.T) {
	t.Run("WithinMaxFutureIsKept", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		for _, ahead := range []time.Duration{-time.Hour, 0, time.Minute, syncproto.MaxFuture} {
			s := syncproto.Stamp{Wall: ft.Now().Add(ahead).UnixMilli(), Counter: 4, Node: nodeB}
			got, replaced := c.Admit(s)
			if replaced || got != s {
				t.Fatalf("Admit(%v ahead) = %v, %v; want the stamp kept", ahead, got, replaced)
			}
			if n := c.Now(); !n.After(s) {
				t.Fatalf("Now() = %v, not after admitted %v", n, s)
			}
		}
	})
	t.Run("YearAheadIsReplaced", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		before := c.Now()
		far := syncproto.Stamp{Wall: ft.Now().Add(365 * 24 * time.Hour).UnixMilli(), Counter: 9, Node: nodeB}
		got, replaced := c.Admit(far)
		if !replaced {
			t.Fatalf("Admit(year ahead) kept %v", got)
		}
		if got.Node != nodeB {
			t.Fatalf("replacement node = %q, want the writer's %q", got.Node, nodeB)
		}
		if got.Wall != ft.Millis() {
			t.Fatalf("replacement wall = %d, want the server's physical time %d", got.Wall, ft.Millis())
		}
		if !got.After(before) {
			t.Fatalf("replacement %v not after earlier server stamp %v", got, before)
		}
		if now := c.Now(); !now.After(got) {
			t.Fatalf("later Now() %v does not order after replacement %v", now, got)
		}
		far2 := far
		far2.Node = nodeC
		got2, replaced2 := c.Admit(far2)
		if !replaced2 || !got2.After(got) {
			t.Fatalf("second far-future Admit = %v, %v; want a replacement after %v", got2, replaced2, got)
		}
		near := syncproto.Stamp{Wall: ft.Millis() + 1, Node: nodeC}
		if got3, r := c.Admit(near); r || !got3.After(got2) {
			t.Fatalf("later in-range Admit = %v, %v; want kept and after %v", got3, r, got2)
		}
	})
	t.Run("ReplacementFollowsObservedStamps", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		near := syncproto.Stamp{Wall: ft.Millis() + syncproto.MaxFuture.Milliseconds(), Counter: 7, Node: nodeC}
		if _, r := c.Admit(near); r {
			t.Fatal("stamp at the bound was replaced")
		}
		got, r := c.Admit(syncproto.Stamp{Wall: ft.Millis() + 2*syncproto.MaxFuture.Milliseconds(), Node: nodeB})
		if !r || !got.After(near) {
			t.Fatalf("replacement %v (replaced=%v) does not order after admitted %v", got, r, near)
		}
	})
}

func TestClock_SetOffset(t *testing.T) {
	t.Run("SmallCorrectionKeepsMemory", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		last := c.Now()
		if c.SetOffset(-time.Minute) {
			t.Fatal("a correction within MaxFuture reported a reset")
		}
		if c.Last() != last {
			t.Fatalf("Last() = %v, want %v", c.Last(), last)
		}
		if s := c.Now(); !s.After(last) {
			t.Fatalf("Now() = %v, not after %v", s, last)
		}
	})
	t.Run("ClockAYearAheadIsBroughtBack", func(t *testing.T) {
		// The tablet's clock is a year fast; the server's welcome corrects it.
		ft := newFakeTime()
		year := 365 * 24 * time.Hour
		ft.Add(year)
		c := ft.Clock(nodeA)
		wrong := c.Now()
		if !c.SetOffset(-year) {
			t.Fatal("SetOffset(-1 year) did not report a reset")
		}
		want := ft.Now().Add(-year).UnixMilli()
		if last := c.Last(); last.Wall != want {
			t.Fatalf("Last() wall = %d, want corrected physical time %d", last.Wall, want)
		}
		s := c.Now()
		if s.Wall > want+syncproto.MaxFuture.Milliseconds() || s.After(wrong) {
			t.Fatalf("Now() after correction = %v, still in the future (wrong stamp %v)", s, wrong)
		}
		prev := s
		for range 3 {
			if n := c.Now(); !n.After(prev) {
				t.Fatalf("Now() = %v not after %v after a reset", n, prev)
			} else {
				prev = n
			}
		}
	})
	t.Run("AtBoundIsKept", func(t *testing.T) {
		ft := newFakeTime()
		c := ft.Clock(nodeA)
		c.Observe(syncproto.Stamp{Wall: ft.Millis() + syncproto.MaxFuture.Milliseconds(), Node: nodeB})
		last := c.Last()
		if c.SetOffset(0) || c.Last() != last {
			t.Fatalf("SetOffset(0) moved a clock within MaxFuture: %v -> %v", last, c.Last())
		}
	})
}

func TestClock_RestoreNeverMovesBackwards(t *testing.T) {
	ft := newFakeTime()
	c := ft.Clock(nodeA)
	c.Now()
	c.Now()
	last := c.Last()

	c.Restore(syncproto.Stamp{Wall: last.Wall - 1000, Counter: 50, Node: nodeA})
	if c.Last() != last {
		t.Fatalf("Restore(older) moved Last() from %v to %v", last, c.Last())
	}
	c.Restore(syncproto.Stamp{Wall: last.Wall, Counter: last.Counter - 1, Node: nodeA})
	if c.Last() != last {
		t.Fatalf("Restore(older counter) moved Last() from %v to %v", last, c.Last())
	}

	// After a restart with the machine clock set back a day, the restored
	// memory keeps stamps ahead of those issued before.
	ft.Add(-24 * time.Hour)
	fresh := ft.Clock(nodeA)
	fresh.Restore(last)
	if s := fresh.Now(); !s.After(last) {
		t.Fatalf("Now() after Restore(%v) = %v", last, s)
	}
}

func TestClock_ConcurrentUse(t *testing.T) {
	c := syncproto.NewClock(nodeA, nil)
	const workers, each = 8, 500
	out := make(chan syncproto.Stamp, workers*each)
	done := make(chan struct{})
	for range workers {
		go func() {
			for range each {
				out <- c.Now()
			}
			done <- struct{}{}
		}()
	}
	for range workers {
		<-done
	}
	close(out)
	seen := make(map[syncproto.Stamp]bool, workers*each)
	for s := range out {
		if seen[s] {
			t.Fatalf("Now() returned %v twice", s)
		}
		seen[s] = true
	}
}
