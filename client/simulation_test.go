package client_test

// Randomized simulations of the sync contract (MISSION.md, "The sync
// contract"). Both print their seed; rerun one with
//
//	PONTE_SIM_SEED=<seed> go test -race -run TestSimulation ./client/
//
// PONTE_SIM_ROUNDS sets the number of rounds of the end-to-end simulation,
// PONTE_SIM_TRACE=1 logs every action, PONTE_TEST_BUGS=1 runs the checks
// skipped as known bugs.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/mattn/go-sqlite3" // to read the server's mutation log at the final check

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/syncproto"
)

// simSeed returns PONTE_SIM_SEED or a time-based seed, and logs how to
// rerun with it.
func simSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PONTE_SIM_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PONTE_SIM_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d; rerun with: PONTE_SIM_SEED=%d go test -race -run '^%s$' ./client/", seed, seed, t.Name())
	return seed
}

func simEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// The key space is small so that conflicts are frequent.
var (
	simCollections = []string{"persons", "attendance"}
	simIDs         = []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"}
	simFields      = []string{"status", "notes", "mark", "count"}
)

type simKey struct{ collection, id string }

func (k simKey) String() string { return k.collection + "/" + k.id }

// ---------------------------------------------------------------------------
// Accounting shared by both simulations.

// loserKey names a version reported as the loser of a conflict.
type loserKey struct {
	field string
	stamp syncproto.Stamp
}

// unaccounted returns a description of every write to one record that
// vanished without a trace. muts are all mutations applied to the record
// (with the stamps the server applied them at), final its state, losers the
// versions the server reported as losing conflicts on it.
//
// A put's value for field f is accounted for if
//   - it is the current version of f (its stamp is f's stamp, and the bytes
//     agree), or
//   - a conflict reported it as loser (same field and stamp, same value), or
//   - a later mutation replaced it knowingly: one that writes f (or deletes
//     the record) and either names it as the version its writer saw
//     (Base[f] equals its stamp) or comes from the same node (a node always
//     sees its own writes), or
//   - a later put wrote the same value to f and is itself accounted for:
//     Apply does not report a write that repeats the current value, and
//     with it nothing disappears.
//
// A delete is accounted for if the record's tombstone is at least as new.
//
// This is exactly what Apply guarantees for any order of arrival: a put is
// displaced from f only by a mutation with a greater stamp, which at that
// moment meets it as the current version (a conflict unless one of the
// three exceptions above) or found a greater version already there (then
// the put itself is reported as loser). So a write left unaccounted for
// here was lost silently — contract 4 — and it is never a false alarm.
// What it cannot see: a write whose later replacement "saw" it only by Base
// while the writer's device in fact showed something else; that would be a
// client bug in computing Base, which check 1 (replicas equal the server)
// does not catch either.
func unaccounted(muts []syncproto.Mutation, final syncproto.Record, losers map[loserKey][]syncproto.Version) []string {
	type memoKey struct {
		i int
		f string
	}
	memo := map[memoKey]bool{}
	var accounted func(i int, f string) bool
	accounted = func(i int, f string) bool {
		k := memoKey{i, f}
		if ok, seen := memo[k]; seen {
			return ok
		}
		memo[k] = false // stamps strictly grow along the recursion: no cycles
		m := muts[i]
		v := m.Data[f]
		ok := false
		switch {
		case final.Stamps[f] == m.Stamp && simJSONEqual(final.Data[f], v):
			ok = true
		case slices.ContainsFunc(losers[loserKey{f, m.Stamp}], func(l syncproto.Version) bool {
			return !l.Deleted && simJSONEqual(l.Value, v)
		}):
			ok = true
		default:
			for j, o := range muts {
				if !o.Stamp.After(m.Stamp) {
					continue
				}
				_, writesF := o.Data[f]
				if o.Op == syncproto.OpDelete || writesF {
					if o.Base[f] == m.Stamp || o.Stamp.Node == m.Stamp.Node {
						ok = true
						break
					}
				}
				if o.Op == syncproto.OpPut && writesF && simJSONEqual(o.Data[f], v) && accounted(j, f) {
					ok = true
					break
				}
			}
		}
		memo[k] = ok
		return ok
	}
	var lost []string
	for i, m := range muts {
		if m.Op == syncproto.OpDelete {
			if m.Stamp.After(final.Deleted) {
				lost = append(lost, fmt.Sprintf("delete %s at %s: record's tombstone is only %s", m.ID, m.Stamp, final.Deleted))
			}
			continue
		}
		for _, f := range slices.Sorted(maps.Keys(m.Data)) {
			if final.Stamps[f] == m.Stamp && !simJSONEqual(final.Data[f], m.Data[f]) {
				lost = append(lost, fmt.Sprintf("put %s field %s at %s: the record holds %s under that stamp, the write was %s",
					m.ID, f, m.Stamp, final.Data[f], m.Data[f]))
				continue
			}
			if !accounted(i, f) {
				lost = append(lost, fmt.Sprintf("put %s field %s=%s at %s (base %s): not current (%s at %s), not a reported loser, not knowingly replaced",
					m.ID, f, m.Data[f], m.Stamp, m.Base[f], final.Data[f], final.Stamps[f]))
			}
		}
	}
	return lost
}

func simJSONEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

func simRecordString(r syncproto.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{deleted:%s", r.Deleted)
	for _, f := range slices.Sorted(maps.Keys(r.Data)) {
		fmt.Fprintf(&b, " %s=%s@%s", f, r.Data[f], r.Stamps[f])
	}
	return b.String() + "}"
}

func simMutString(m syncproto.Mutation) string {
	if m.Op == syncproto.OpDelete {
		return fmt.Sprintf("%s delete@%s base=%v", m.ID, m.Stamp, m.Base)
	}
	return fmt.Sprintf("%s put%s@%s base=%v", m.ID, syncproto.EncodeData(m.Data), m.Stamp, m.Base)
}

// ---------------------------------------------------------------------------
// The merge rules alone, no I/O.

// TestSimulation_ApplyOrderIndependent generates causally plausible
// histories — several nodes with their own hybrid clocks (some skewed)
// writing one record from views that merged a random prefix of what was
// written before, so Base names what each writer really saw — and applies
// each history to a fresh record in many random orders with random
// duplicates, as a server receiving retried and reordered pushes would.
// Every order must give the same record (the join of all writes), a
// duplicate must change nothing, every reported conflict must be genuine,
// and no write may vanish unaccounted for (see unaccounted).
func TestSimulation_ApplyOrderIndependent(t *testing.T) {
	seed := simSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	const scenarios, orders = 400, 40
	var loserDiffs int
	var firstDiff string
	for sc := range scenarios {
		muts := simHistory(rng)
		want := syncproto.Record{}
		for _, m := range muts {
			want = syncproto.Merge(want, m.AsRecord())
		}
		var firstLosers []string
		for o := range orders {
			order := simOrder(rng, len(muts))
			cur := syncproto.Record{}
			seen := map[string]bool{}
			losers := map[loserKey][]syncproto.Version{}
			var loserList []string
			for _, i := range order {
				m := muts[i]
				next, changed, conflicts := syncproto.Apply(cur, m)
				if seen[m.ID] {
					// The server answers a retried mutation from its log; the
					// state must not move either way.
					if changed || !next.Equal(cur) {
						t.Fatalf("scenario %d: applying %s again changed %s into %s", sc, m.ID, simRecordString(cur), simRecordString(next))
					}
					continue
				}
				seen[m.ID] = true
				for _, c := range conflicts {
					if !c.Winner.Stamp.After(c.Loser.Stamp) {
						t.Fatalf("scenario %d: conflict %+v: the winner is not the newer version", sc, c)
					}
					if c.Winner.Stamp != m.Stamp && c.Loser.Stamp != m.Stamp {
						t.Fatalf("scenario %d: conflict %+v reported by %s does not involve it", sc, c, m.ID)
					}
					losers[loserKey{c.Field, c.Loser.Stamp}] = append(losers[loserKey{c.Field, c.Loser.Stamp}], c.Loser)
					loserList = append(loserList, fmt.Sprintf("%s:%s@%s del=%v", c.Field, c.Loser.Value, c.Loser.Stamp, c.Loser.Deleted))
				}
				cur = next
			}
			if !cur.Equal(want) {
				t.Fatalf("scenario %d, order %v: got %s, want the join %s\nmutations:\n  %s", sc, order,
					simRecordString(cur), simRecordString(want), strings.Join(simMutStrings(muts), "\n  "))
			}
			if lost := unaccounted(muts, cur, losers); len(lost) > 0 {
				t.Fatalf("scenario %d, order %v: writes lost silently:\n  %s\nfinal %s\nmutations:\n  %s", sc, order,
					strings.Join(lost, "\n  "), simRecordString(cur), strings.Join(simMutStrings(muts), "\n  "))
			}
			slices.Sort(loserList)
			if o == 0 {
				firstLosers = loserList
			} else if !slices.Equal(loserList, firstLosers) {
				if loserDiffs == 0 {
					firstDiff = fmt.Sprintf("scenario %d: one order reports losers %v, order %v reports %v; mutations:\n  %s",
						sc, firstLosers, order, loserList, strings.Join(simMutStrings(muts), "\n  "))
				}
				loserDiffs++
				break
			}
		}
	}
	t.Logf("%d scenarios × %d orders: same record and every write accounted for in each; loser multisets differed by order in %d scenarios",
		scenarios, orders, loserDiffs)
	t.Run("LoserMultisetIsOrderIndependent", func(t *testing.T) {
		if loserDiffs == 0 {
			return
		}
		if os.Getenv("PONTE_TEST_BUGS") == "" {
			t.Skip("not promised: Apply's doc comment says the conflicts reported may depend on arrival order " +
				"(syncproto TestApply_LosersDependOnOrder); what is promised, that no losing version is dropped " +
				"without a conflict or a writer who saw it, is checked above. PONTE_TEST_BUGS=1 shows a counterexample")
		}
		t.Errorf("loser multiset depends on order in %d of %d scenarios; first:\n%s", loserDiffs, scenarios, firstDiff)
	})
}

func simMutStrings(muts []syncproto.Mutation) []string {
	out := make([]string, len(muts))
	for i, m := range muts {
		out[i] = simMutString(m)
	}
	return out
}

// simHistory returns 3–18 mutations of one record by 2–5 nodes, in the
// order they were made. Each node writes from its own view, which merged
// its own writes and, when it "synced", a random prefix of all writes so
// far (what the server had received by then). Clocks are hybrid logical
// clocks over a shared fake time with per-node skews of a few milliseconds,
// so stamps tie on the wall often and counters and node order decide.
func simHistory(rng *rand.Rand) []syncproto.Mutation {
	nodes := 2 + rng.IntN(4)
	var wall int64 = 1_700_000_000_000
	clocks := make([]*syncproto.Clock, nodes)
	views := make([]syncproto.Record, nodes)
	for i := range nodes {
		node := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		skew := rng.Int64N(7) - 3
		clocks[i] = syncproto.NewClock(node, func() time.Time { return time.UnixMilli(wall + skew) })
	}
	values := []string{`1`, `2`, `"x"`}
	n := 3 + rng.IntN(16)
	muts := make([]syncproto.Mutation, 0, n)
	for len(muts) < n {
		wall += rng.Int64N(3)
		i := rng.IntN(nodes)
		if rng.IntN(3) == 0 {
			for _, m := range muts[:rng.IntN(len(muts)+1)] {
				views[i] = syncproto.Merge(views[i], m.AsRecord())
			}
			continue
		}
		m := syncproto.Mutation{ID: fmt.Sprintf("m%d", len(muts)), Collection: "c", Record: "r",
			Op: syncproto.OpPut, Base: map[string]syncproto.Stamp{}}
		fields := map[string]bool{}
		if rng.IntN(6) == 0 {
			m.Op = syncproto.OpDelete
			for f := range views[i].Data {
				fields[f] = true
			}
		} else {
			m.Data = map[string]json.RawMessage{}
			for len(m.Data) == 0 {
				for _, f := range simFields[:3] {
					if rng.IntN(2) == 0 {
						v := values[rng.IntN(len(values))]
						if rng.IntN(3) == 0 {
							v = fmt.Sprintf(`"u%d"`, len(muts))
						}
						m.Data[f] = json.RawMessage(v)
						fields[f] = true
					}
				}
			}
		}
		for f := range fields {
			if s := views[i].FieldStamp(f); !s.IsZero() {
				m.Base[f] = s
				clocks[i].Observe(s)
			}
		}
		m.Stamp = clocks[i].Now()
		views[i] = syncproto.Merge(views[i], m.AsRecord())
		muts = append(muts, m)
	}
	return muts
}

// simOrder returns a random permutation of 0..n-1 with random duplicates,
// each after the first occurrence of what it repeats.
func simOrder(rng *rand.Rand, n int) []int {
	order := rng.Perm(n)
	for range rng.IntN(n/2 + 1) {
		j := rng.IntN(len(order))
		at := j + 1 + rng.IntN(len(order)-j)
		order = slices.Insert(order, at, order[j])
	}
	return order
}

// ---------------------------------------------------------------------------
// End to end: the real server and real clients over real websockets.

// errSimCut is what a cut connection returns.
var errSimCut = errors.New("simulated network cut")

// faultPlan cuts a connection after so many bytes read and written.
type faultPlan struct{ read, write int64 }

// simConn is a client's TCP connection: it may be cut after a byte budget
// (dropping a hello, a push, an ack or a page mid-frame), and its writes
// wait on gate while the test captures a write on a live replica.
type simConn struct {
	net.Conn
	readLeft, writeLeft atomic.Int64
	gate                *sync.RWMutex
	once                sync.Once
	cuts                *atomic.Int64
}

func (c *simConn) sever() {
	c.once.Do(func() {
		c.cuts.Add(1)
		c.Conn.Close()
	})
}

func (c *simConn) Read(p []byte) (int, error) {
	left := c.readLeft.Load()
	if left <= 0 {
		c.sever()
		return 0, errSimCut
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.readLeft.Add(-int64(n))
	return n, err
}

func (c *simConn) Write(p []byte) (int, error) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if left := c.writeLeft.Load(); int64(len(p)) > left {
		n := 0
		if left > 0 {
			n, _ = c.Conn.Write(p[:left])
		}
		c.writeLeft.Store(0)
		c.sever()
		return n, errSimCut
	}
	n, err := c.Conn.Write(p)
	c.writeLeft.Add(-int64(n))
	return n, err
}

type simReplica struct {
	name, user, path, token string
	skew                    time.Duration
	compress                bool
	node                    string
	c                       *client.Client
	offlineUntil            int
	fault                   atomic.Pointer[faultPlan] // for the next dial only
	gate                    sync.RWMutex
	cuts                    atomic.Int64
	conn                    atomic.Pointer[simConn] // the latest connection
	live                    *simLive
}

type simLive struct {
	cancel context.CancelFunc
	done   chan error
	since  int
}

func (r *simReplica) options(url string) client.Options {
	opts := client.Options{Server: url, Token: r.token}
	if r.skew != 0 {
		skew := r.skew
		opts.Now = func() time.Time { return time.Now().Add(skew) }
	}
	opts.Dialer = &websocket.Dialer{
		HandshakeTimeout:  10 * time.Second,
		EnableCompression: r.compress,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			sc := &simConn{Conn: conn, gate: &r.gate, cuts: &r.cuts}
			sc.readLeft.Store(1 << 62)
			sc.writeLeft.Store(1 << 62)
			if f := r.fault.Swap(nil); f != nil {
				sc.readLeft.Store(f.read)
				sc.writeLeft.Store(f.write)
			}
			r.conn.Store(sc)
			return sc, nil
		},
	}
	return opts
}

// simMut is one mutation the simulation made, as the replica queued it.
type simMut struct {
	round   int
	replica string
	m       syncproto.Mutation
}

type sim struct {
	t      *testing.T
	rng    *rand.Rand
	ctx    context.Context // the whole run's deadline
	srv    *testenv.Server
	url    string
	reps   []*simReplica
	muts   []simMut
	round  int
	values int
	trace  []string
	stats  map[string]int
}

func (s *sim) tracef(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("round %d: ", s.round)+fmt.Sprintf(format, args...))
}

// opCtx bounds one network operation.
func (s *sim) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, 20*time.Second)
}

// TestSimulation_Converges runs 4–6 replicas (some sharing a user, some with
// wrong clocks) against one server for many rounds of random writes, syncs,
// partitions, app restarts, server restarts, connections cut at random
// bytes, and a stretch of live mode; then syncs everyone cleanly and checks
// the contract:
//
//  1. every replica shows exactly the server's records, and the server's
//     records are the join of every write made (convergence);
//  2. no replica has anything pending, refused or failed;
//  3. no write was lost silently (see unaccounted), and every conflict the
//     server reports is between two real writes, the newer winning;
//  4. every write was applied exactly once: the server's log holds each
//     mutation ID once and nothing else.
func TestSimulation_Converges(t *testing.T) {
	seed := simSeed(t)
	rounds := simEnvInt(t, "PONTE_SIM_ROUNDS", 400)
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, 0xc0ffee)), ctx: testenv.Context(t, 5*time.Minute),
		stats: map[string]int{}}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("PONTE_SIM_TRACE") != "" {
			from := max(0, len(s.trace)-300)
			t.Logf("seed %d; the last %d of %d actions:\n%s", seed, len(s.trace)-from, len(s.trace),
				strings.Join(s.trace[from:], "\n"))
		}
	})
	start := time.Now()
	s.srv = testenv.MustStartServer(t)
	s.url = s.srv.SyncURL()

	users := []string{"amal", "amal", "bruno", "chiara", "chiara", "dmitri"}
	skews := []time.Duration{0, 0, 0, 0, 0, 0, -time.Hour, 3 * time.Minute, 365 * 24 * time.Hour}
	dir := t.TempDir()
	for i := range 4 + s.rng.IntN(3) {
		r := &simReplica{name: fmt.Sprintf("R%d", i), user: users[i], path: filepath.Join(dir, fmt.Sprintf("r%d.db", i)),
			token: s.srv.Token(users[i]), skew: skews[s.rng.IntN(len(skews))], compress: s.rng.IntN(2) == 0}
		r.c = testenv.MustOpenClientAt(t, r.path, r.options(s.url))
		r.node = r.c.Node()
		s.reps = append(s.reps, r)
		t.Logf("%s: user %s, node %s, clock skew %v, compression %v", r.name, r.user, r.node, r.skew, r.compress)
	}
	// One replica runs live for a stretch in the middle.
	liveRep := s.reps[s.rng.IntN(len(s.reps))]
	liveFrom := rounds/5 + s.rng.IntN(rounds/5+1)
	liveTo := liveFrom + rounds/4 + s.rng.IntN(rounds/4+1)

	for s.round = 0; s.round < rounds; s.round++ {
		if s.round == liveFrom {
			s.startLive(liveRep)
		}
		if s.round == liveTo {
			s.stopLive(liveRep)
		}
		for range 1 + s.rng.IntN(2) {
			s.step()
		}
		if t.Failed() {
			return
		}
	}
	s.stopLive(liveRep)
	t.Logf("%d rounds in %v: %v", rounds, time.Since(start).Round(time.Millisecond), s.stats)

	// Everyone syncs cleanly, twice: the first pass pushes everything, the
	// second brings every replica what the others pushed after it.
	for pass := range 2 {
		for _, r := range s.reps {
			if err := s.sync(r, nil); err != nil {
				t.Fatalf("final sync %d of %s: %v", pass+1, r.name, err)
			}
		}
	}
	s.check()
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// step takes one random action.
func (s *sim) step() {
	t := s.t
	r := s.reps[s.rng.IntN(len(s.reps))]
	switch p := s.rng.IntN(100); {
	case p < 42:
		s.write(r)
	case p < 68:
		if r.live != nil || s.round < r.offlineUntil {
			return
		}
		if err := s.sync(r, nil); err != nil {
			t.Errorf("%s: sync over a good connection: %v", r.name, err)
		}
	case p < 82:
		if r.live != nil || s.round < r.offlineUntil {
			return
		}
		f := &faultPlan{read: 1 << 62, write: 1 << 62}
		switch s.rng.IntN(3) {
		case 0:
			f.read = s.budget()
		case 1:
			f.write = s.budget()
		default:
			f.read, f.write = s.budget(), s.budget()
		}
		r.fault.Store(f)
		cutsBefore := r.cuts.Load()
		err := s.sync(r, f)
		r.fault.Store(nil)
		cut := r.cuts.Load() > cutsBefore
		switch {
		case err == nil:
			s.stats["faulty sync ok"]++
		case !cut:
			t.Errorf("%s: sync failed though its connection was not cut: %v", r.name, err)
		case errors.Is(err, syncproto.ErrUnreachable):
			s.stats["faulty sync cut"]++
		default:
			// A cut may only ever look like a lost connection.
			t.Errorf("%s: sync over a cut connection returned %v (code %s), want ErrUnreachable", r.name, err, syncproto.ErrorCode(err))
		}
	case p < 86:
		if r.live != nil {
			if conn := r.conn.Load(); conn != nil && s.rng.IntN(3) == 0 {
				conn.sever() // Run reconnects with backoff and pushes again
				s.stats["live cut"]++
				s.tracef("%s: live connection cut", r.name)
			}
			return
		}
		if s.round < r.offlineUntil {
			return
		}
		s.syncWhileWriting(r)
	case p < 89:
		if r.live != nil {
			return
		}
		r.offlineUntil = s.round + 3 + s.rng.IntN(20)
		s.stats["offline"]++
		s.tracef("%s offline until round %d", r.name, r.offlineUntil)
	case p < 96:
		if r.live != nil {
			return
		}
		s.reopen(r)
	case p < 97:
		if s.stats["bulk"] < 2 {
			s.bulk(r)
		}
	default:
		s.tracef("server restart")
		s.stats["server restart"]++
		s.srv.Restart()
		if s.srv.SyncURL() != s.url {
			t.Fatalf("the server came back at %s, not %s", s.srv.SyncURL(), s.url)
		}
	}
}

// budget returns a byte budget spread over handshakes, hellos, pushes,
// results and pages: most cuts land somewhere in a short session.
func (s *sim) budget() int64 {
	return int64(1) << (3 + s.rng.IntN(16)) * int64(1+s.rng.IntN(8)) / 4
}

func (s *sim) value() any {
	s.values++
	switch s.rng.IntN(7) {
	case 0, 1:
		return s.rng.IntN(3) // repeats are frequent: equal-value writes are no conflict
	case 2:
		return []string{"present", "absent", "late"}[s.rng.IntN(3)]
	case 3:
		return map[string]any{"n": s.rng.IntN(2), "by": "sim"}
	case 4:
		return s.rng.IntN(2) == 0
	default:
		return fmt.Sprintf("v%d", s.values) // unique
	}
}

func (s *sim) randomOp() client.Op {
	op := client.Op{Collection: simCollections[s.rng.IntN(len(simCollections))], ID: simIDs[s.rng.IntN(len(simIDs))]}
	if s.rng.IntN(9) == 0 {
		op.Delete = true
		return op
	}
	op.Fields = map[string]any{}
	for _, i := range s.rng.Perm(len(simFields))[:1+s.rng.IntN(3)] {
		op.Fields[simFields[i]] = s.value()
	}
	return op
}

// write makes one Put, Delete or multi-op Write and records the mutations
// the replica queued for it, read back from its outbox (through Query,
// which reads the replica's own tables): their IDs, stamps and bases are
// what the final accounting needs. On a live replica the connection's
// writes wait meanwhile, so the queued rows cannot be pushed, acknowledged
// and dropped before they are read.
func (s *sim) write(r *simReplica) {
	ops := []client.Op{s.randomOp()}
	if s.rng.IntN(6) == 0 {
		for range 1 + s.rng.IntN(3) {
			ops = append(ops, s.randomOp())
		}
	}
	s.writeOps(r, ops)
}

// bulk writes 1200–3000 records of a third collection, and a few of the hot
// ones, in one Write: the outbox then needs several pipelined pushes, and
// every replica's next catch-up several pages.
func (s *sim) bulk(r *simReplica) {
	n := 1200 + s.rng.IntN(1800)
	ops := make([]client.Op, 0, n+8)
	for i := range n {
		ops = append(ops, client.Op{Collection: "lessons", ID: fmt.Sprintf("l%04d", s.rng.IntN(4000)),
			Fields: map[string]any{"topic": fmt.Sprintf("t%d", i), simFields[s.rng.IntN(len(simFields))]: s.value()}})
	}
	for range 8 {
		ops = append(ops, s.randomOp())
	}
	s.stats["bulk"]++
	s.stats["bulk ops"] += len(ops)
	s.writeOps(r, ops)
}

// syncWhileWriting syncs while the app writes on the same replica.
func (s *sim) syncWhileWriting(r *simReplica) {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := s.opCtx()
		defer cancel()
		done <- r.c.Sync(ctx)
	}()
	for range 1 + s.rng.IntN(3) {
		time.Sleep(time.Duration(s.rng.IntN(3000)) * time.Microsecond)
		s.write(r)
	}
	err := <-done
	s.tracef("%s syncs while writing: %v", r.name, err)
	s.stats["sync while writing"]++
	if err != nil {
		s.t.Errorf("%s: sync over a good connection while writing: %v", r.name, err)
	}
}

func (s *sim) writeOps(r *simReplica, ops []client.Op) {
	t := s.t
	r.gate.Lock()
	defer r.gate.Unlock()
	ctx, cancel := s.opCtx()
	defer cancel()
	var err error
	switch {
	case len(ops) > 1:
		err = r.c.Write(ctx, ops...)
		s.stats["write multi"]++
	case ops[0].Delete:
		err = r.c.Delete(ctx, ops[0].Collection, ops[0].ID)
		s.stats["delete"]++
	default:
		err = r.c.Put(ctx, ops[0].Collection, ops[0].ID, ops[0].Fields)
		s.stats["put"]++
	}
	if err != nil {
		t.Fatalf("%s: write of %d ops (first %+v): %v", r.name, len(ops), ops[0], err)
	}
	rows, err := r.c.Query(ctx, `SELECT body FROM outbox_bodies ORDER BY seq DESC LIMIT ?`, len(ops))
	if err != nil {
		t.Fatalf("%s: read outbox: %v", r.name, err)
	}
	var queued []syncproto.Mutation
	for rows.Next() {
		var body []byte
		var m syncproto.Mutation
		if err := rows.Scan(&body); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: outbox body %s: %v", r.name, body, err)
		}
		queued = append(queued, m)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(queued)
	if len(queued) != len(ops) {
		t.Fatalf("%s: wrote %d ops, the outbox holds %d new rows", r.name, len(ops), len(queued))
	}
	var desc []string
	for i, op := range ops {
		m := queued[i]
		if m.Collection != op.Collection || m.Record != op.ID || (m.Op == syncproto.OpDelete) != op.Delete ||
			len(m.Data) != len(op.Fields) || m.Stamp.Node != r.node {
			t.Fatalf("%s: op %d %+v queued as %s", r.name, i, op, simMutString(m))
		}
		for f, v := range op.Fields {
			b, _ := json.Marshal(v)
			if !simJSONEqual(m.Data[f], b) {
				t.Fatalf("%s: op %d field %s=%s queued as %s", r.name, i, f, b, m.Data[f])
			}
		}
		s.muts = append(s.muts, simMut{round: s.round, replica: r.name, m: m})
		if len(ops) <= 10 {
			desc = append(desc, fmt.Sprintf("%s/%s %s", m.Collection, m.Record, simMutString(m)))
		}
	}
	if len(desc) == 0 {
		desc = []string{fmt.Sprintf("%d ops in one Write", len(ops))}
	}
	s.tracef("%s writes %s", r.name, strings.Join(desc, "; "))
}

// sync runs one Sync, through a connection cut as f says if f is not nil.
func (s *sim) sync(r *simReplica, f *faultPlan) error {
	ctx, cancel := s.opCtx()
	defer cancel()
	err := r.c.Sync(ctx)
	what := "good"
	if f != nil {
		what = fmt.Sprintf("cut after %d read / %d written bytes", f.read, f.write)
	}
	s.tracef("%s syncs (%s): %v", r.name, what, err)
	if f == nil {
		s.stats["sync"]++
	}
	return err
}

// reopen closes a replica and opens it again from its file: an app restart.
func (s *sim) reopen(r *simReplica) {
	if err := r.c.Close(); err != nil {
		s.t.Fatalf("%s: close: %v", r.name, err)
	}
	r.c = testenv.MustOpenClientAt(s.t, r.path, r.options(s.url))
	if r.c.Node() != r.node {
		s.t.Fatalf("%s: reopened with node %s, was %s", r.name, r.c.Node(), r.node)
	}
	s.stats["reopen"]++
	s.tracef("%s reopened", r.name)
}

func (s *sim) startLive(r *simReplica) {
	ctx, cancel := context.WithCancel(s.ctx)
	r.live = &simLive{cancel: cancel, done: make(chan error, 1), since: s.round}
	r.offlineUntil = 0
	c := r.c
	go func() { r.live.done <- c.Run(ctx) }()
	s.tracef("%s goes live", r.name)
}

func (s *sim) stopLive(r *simReplica) {
	if r.live == nil {
		return
	}
	r.live.cancel()
	select {
	case err := <-r.live.done:
		if err != nil {
			s.t.Errorf("%s: Run: %v", r.name, err)
		}
	case <-time.After(20 * time.Second):
		s.t.Fatalf("%s: Run did not return within 20s of its context ending", r.name)
	}
	s.tracef("%s stops live mode (live since round %d)", r.name, r.live.since)
	s.stats["live rounds"] += s.round - r.live.since
	r.live = nil
}

// check verifies the contract once every replica has synced cleanly.
func (s *sim) check() {
	t := s.t
	ctx, cancel := s.opCtx()
	defer cancel()

	// The server's view: records, the stamps it applied each mutation at
	// (it re-stamps writes from clocks too far ahead), conflicts.
	keys := map[simKey]bool{}
	for _, c := range simCollections {
		for _, id := range simIDs {
			keys[simKey{c, id}] = true
		}
	}
	for _, sm := range s.muts {
		keys[simKey{sm.m.Collection, sm.m.Record}] = true
	}
	server := map[simKey]syncproto.Record{}
	for k := range keys {
		rec, _, err := s.srv.Store.Get(ctx, k.collection, k.id)
		if err != nil {
			t.Fatalf("server get %s: %v", k, err)
		}
		if !rec.Exists() && len(rec.Data) != 0 {
			t.Errorf("server %s: deleted but holds %v", k, rec.Data)
		}
		server[k] = rec
	}
	logged := s.serverLog(ctx)
	perRecord := map[simKey][]syncproto.Mutation{}
	restamped := 0
	for _, sm := range s.muts {
		m := sm.m
		e, ok := logged[m.ID]
		if !ok {
			t.Errorf("%s's %s (round %d) never reached the server", sm.replica, simMutString(m), sm.round)
			continue
		}
		if e.collection != m.Collection || e.record != m.Record || e.op != m.Op {
			t.Errorf("server logged %s as %+v", simMutString(m), e)
		}
		if e.stamp != m.Stamp {
			if e.stamp.Node != m.Stamp.Node {
				t.Errorf("server logged %s with stamp %s of another node", simMutString(m), e.stamp)
			}
			m.Stamp = e.stamp
			restamped++
		}
		delete(logged, m.ID)
		k := simKey{m.Collection, m.Record}
		perRecord[k] = append(perRecord[k], m)
	}
	for id, e := range logged {
		t.Errorf("the server logged mutation %s (%+v) nobody made", id, e)
	}

	// 1. Convergence: the server holds the join of every write, and every
	// replica shows exactly what the server holds.
	for k, rec := range server {
		want := syncproto.Record{}
		for _, m := range perRecord[k] {
			want = syncproto.Merge(want, m.AsRecord())
		}
		if !rec.Equal(want) {
			t.Errorf("server %s = %s, want the join of its %d writes %s", k, simRecordString(rec), len(perRecord[k]), simRecordString(want))
		}
	}
	for _, r := range s.reps {
		got := s.visible(ctx, r)
		for k, rec := range server {
			data, ok := got[k]
			switch {
			case !rec.Exists() && ok:
				t.Errorf("%s shows %s = %s; the server has it deleted", r.name, k, data)
			case rec.Exists() && !ok:
				t.Errorf("%s does not show %s; the server holds %s", r.name, k, syncproto.EncodeData(rec.Data))
			case rec.Exists():
				if !maps.EqualFunc(data, rec.Data, simJSONEqual) {
					t.Errorf("%s shows %s = %s; the server holds %s", r.name, k, syncproto.EncodeData(data), syncproto.EncodeData(rec.Data))
				}
			}
			delete(got, k)
		}
		for k, data := range got {
			t.Errorf("%s shows %s = %s outside the key space", r.name, k, syncproto.EncodeData(data))
		}
		// Get agrees with the records view.
		k := simKey{simCollections[0], simIDs[0]}
		f, err := r.c.Get(ctx, k.collection, k.id)
		if rec := server[k]; rec.Exists() != (err == nil) || (err != nil && !errors.Is(err, client.ErrNotFound)) ||
			(err == nil && !maps.EqualFunc(f, rec.Data, simJSONEqual)) {
			t.Errorf("%s: Get %s = %v, %v; the server holds %s", r.name, k, f, err, simRecordString(rec))
		}
	}

	// 2. Nothing pending, refused or failed.
	for _, r := range s.reps {
		st, err := r.c.Status(ctx)
		if err != nil {
			t.Fatalf("%s: status: %v", r.name, err)
		}
		if st.Pending != 0 || st.Rejected != 0 || st.LastError != nil || st.LastSync == nil {
			t.Errorf("%s: status %+v after clean syncs; want nothing pending or rejected, no error", r.name, st)
		}
		var queued int
		rows, err := r.c.Query(ctx, `SELECT count(*) FROM outbox`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			rows.Scan(&queued)
		}
		rows.Close()
		if queued != 0 {
			t.Errorf("%s: %d acknowledged writes still in the outbox after the echo of every record", r.name, queued)
		}
	}

	// 3. No write lost silently; every conflict is real.
	conflicts := s.serverConflicts(ctx)
	losers := map[simKey]map[loserKey][]syncproto.Version{}
	versionOf := func(k simKey, v syncproto.Version, field string) bool {
		for _, m := range perRecord[k] {
			if m.Stamp != v.Stamp {
				continue
			}
			if v.Deleted {
				return m.Op == syncproto.OpDelete
			}
			return m.Op == syncproto.OpPut && simJSONEqual(m.Data[field], v.Value)
		}
		return false
	}
	for _, c := range conflicts {
		k := simKey{c.Collection, c.Record}
		cf := c.Conflict
		if !cf.Winner.Stamp.After(cf.Loser.Stamp) || !versionOf(k, cf.Winner, cf.Field) || !versionOf(k, cf.Loser, cf.Field) {
			t.Errorf("server conflict %d on %s is not between two real writes, the newer winning: %+v", c.ID, k, cf)
		}
		if losers[k] == nil {
			losers[k] = map[loserKey][]syncproto.Version{}
		}
		lk := loserKey{cf.Field, cf.Loser.Stamp}
		losers[k][lk] = append(losers[k][lk], cf.Loser)
	}
	lostWrites := 0
	for k, muts := range perRecord {
		lost := unaccounted(muts, server[k], losers[k])
		for _, l := range lost {
			t.Errorf("LOST WRITE on %s: %s", k, l)
		}
		if len(lost) > 0 {
			lostWrites += len(lost)
			var cs []string
			for _, c := range conflicts {
				if c.Collection == k.collection && c.Record == k.id {
					cs = append(cs, fmt.Sprintf("%+v (by %s)", c.Conflict, c.Mutation))
				}
			}
			t.Logf("%s: final %s\nwrites in the order made:\n  %s\nconflicts:\n  %s", k, simRecordString(server[k]),
				strings.Join(simMutStrings(muts), "\n  "), strings.Join(cs, "\n  "))
		}
	}
	// A device keeps the conflicts reported to it; each is one the server
	// holds. (The converse fails after a lost ack: a duplicate's result
	// carries no conflicts. That is only a count here.)
	serverSet := map[string]bool{}
	for _, c := range conflicts {
		serverSet[c.Mutation+" "+c.Conflict.Field+" "+c.Conflict.Loser.Stamp.String()] = true
	}
	kept := 0
	for _, r := range s.reps {
		local, err := r.c.Conflicts(ctx)
		if err != nil {
			t.Fatalf("%s: conflicts: %v", r.name, err)
		}
		for _, c := range local {
			if !serverSet[c.Mutation+" "+c.Conflict.Field+" "+c.Conflict.Loser.Stamp.String()] {
				t.Errorf("%s keeps a conflict the server does not: %+v", r.name, c)
			}
		}
		kept += len(local)
	}

	// 4. Applied exactly once (the log check above); the count agrees.
	for k := range keys {
		n, err := s.srv.Store.CountMutations(ctx, k.collection, k.id)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(perRecord[k]); n != want {
			t.Errorf("server counts %d mutations of %s, the replicas made %d", n, k, want)
		}
	}
	t.Logf("checked %d mutations (%d re-stamped by the server) over %d records on %d replicas; %d conflicts on the server, %d kept on devices",
		len(s.muts), restamped, len(perRecord), len(s.reps), len(conflicts), kept)
}

// visible returns a replica's records view.
func (s *sim) visible(ctx context.Context, r *simReplica) map[simKey]map[string]json.RawMessage {
	rows, err := r.c.Query(ctx, `SELECT collection, id, data FROM records`)
	if err != nil {
		s.t.Fatalf("%s: query records: %v", r.name, err)
	}
	defer rows.Close()
	out := map[simKey]map[string]json.RawMessage{}
	for rows.Next() {
		var k simKey
		var data []byte
		if err := rows.Scan(&k.collection, &k.id, &data); err != nil {
			s.t.Fatal(err)
		}
		fields, err := syncproto.DecodeData(data)
		if err != nil {
			s.t.Fatalf("%s: %s data %s: %v", r.name, k, data, err)
		}
		out[k] = fields
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

type simLogEntry struct {
	collection, record string
	op                 syncproto.Op
	stamp              syncproto.Stamp
}

// serverLog reads the server's mutation log, read-only: mutation ID to what
// was applied. Its id column is UNIQUE, so an ID appears at most once.
func (s *sim) serverLog(ctx context.Context) map[string]simLogEntry {
	t := s.t
	db, err := sql.Open("sqlite3", "file:"+s.srv.DBPath+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT m.id, r.collection, r.id, m.op, m.stamp FROM mutations m JOIN records r ON r.rid = m.record`)
	if err != nil {
		t.Fatalf("read the server's mutation log: %v", err)
	}
	defer rows.Close()
	out := map[string]simLogEntry{}
	for rows.Next() {
		var id, op, stamp string
		var e simLogEntry
		if err := rows.Scan(&id, &e.collection, &e.record, &op, &stamp); err != nil {
			t.Fatal(err)
		}
		e.op = syncproto.Op(op)
		if e.stamp, err = syncproto.ParseStamp(stamp); err != nil {
			t.Fatalf("mutation %s: %v", id, err)
		}
		out[id] = e
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *sim) serverConflicts(ctx context.Context) []storeConflict {
	var out []storeConflict
	var after int64
	for {
		page, err := s.srv.Store.Conflicts(ctx, after, 500, false)
		if err != nil {
			s.t.Fatalf("server conflicts: %v", err)
		}
		if len(page) == 0 {
			return out
		}
		for _, c := range page {
			out = append(out, storeConflict{ID: c.ID, Collection: c.Collection, Record: c.Record, Mutation: c.Mutation, Conflict: c.Conflict})
		}
		after = page[len(page)-1].ID
	}
}

// storeConflict is the part of a server conflict the checks read.
type storeConflict struct {
	ID                           int64
	Collection, Record, Mutation string
	Conflict                     syncproto.Conflict
}
