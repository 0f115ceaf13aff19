package syncproto_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ponte-project/ponte/syncproto"
)

var seedFlag = flag.String("seed", "", `seed for the randomized tests; "random" picks one (default: fixed, or $PONTE_TEST_SEED)`)

// defaultSeed keeps `go test` deterministic; pass -seed=random (or set
// PONTE_TEST_SEED=random) to explore, and -seed=N to reproduce a failure.
const defaultSeed = 20240601

// testSeed returns the seed for a randomized test and logs how to rerun it.
func testSeed(tb testing.TB) uint64 {
	tb.Helper()
	text := *seedFlag
	if text == "" {
		text = os.Getenv("PONTE_TEST_SEED")
	}
	var seed uint64
	switch text {
	case "":
		seed = defaultSeed
	case "random":
		seed = uint64(time.Now().UnixNano())
	default:
		n, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			tb.Fatalf("bad seed %q: %v", text, err)
		}
		seed = n
	}
	tb.Logf("seed %d (reproduce with -seed=%d or PONTE_TEST_SEED=%d)", seed, seed, seed)
	return seed
}

// Generators for small random records: few fields, few values, stamps from
// three nodes over a handful of milliseconds, so that equal stamps, equal
// values and tombstones covering fields all happen often.

var (
	genFields = []string{"a", "b", "c"}
	genValues = []string{`1`, `2`, `"x"`, `null`, `{"k":[1,2]}`}
	genNodes  = []string{nodeA, nodeB, nodeC}
)

func genStamp(r *rand.Rand, minWall, maxWall int64) syncproto.Stamp {
	return syncproto.Stamp{
		Wall:    minWall + r.Int64N(maxWall-minWall+1),
		Counter: uint16(r.IntN(2)),
		Node:    genNodes[r.IntN(len(genNodes))],
	}
}

// genRecord returns a record that keeps Record's invariant: every field is
// newer than the tombstone.
func genRecord(r *rand.Rand) syncproto.Record {
	rec := syncproto.Record{Data: map[string]json.RawMessage{}, Stamps: map[string]syncproto.Stamp{}}
	if r.IntN(2) == 0 {
		rec.Deleted = genStamp(r, 1, 4)
	}
	for _, f := range genFields {
		if r.IntN(3) == 0 {
			continue
		}
		s := genStamp(r, 1, 6)
		if !s.After(rec.Deleted) {
			continue
		}
		rec.Data[f] = json.RawMessage(genValues[r.IntN(len(genValues))])
		rec.Stamps[f] = s
	}
	return rec
}

// genMutation returns a put of one to three fields or a delete, with a Base
// that is, per field, what cur says, the zero stamp or a random stamp.
func genMutation(r *rand.Rand, cur syncproto.Record, stamp syncproto.Stamp) syncproto.Mutation {
	m := syncproto.Mutation{ID: "m", Collection: "c", Record: "r", Stamp: stamp, Base: map[string]syncproto.Stamp{}}
	if r.IntN(4) == 0 {
		m.Op = syncproto.OpDelete
	} else {
		m.Op = syncproto.OpPut
		m.Data = map[string]json.RawMessage{}
		for len(m.Data) == 0 {
			for _, f := range genFields {
				if r.IntN(2) == 0 {
					m.Data[f] = json.RawMessage(genValues[r.IntN(len(genValues))])
				}
			}
		}
	}
	for _, f := range genFields {
		switch r.IntN(3) {
		case 0:
			m.Base[f] = cur.FieldStamp(f)
		case 1:
			m.Base[f] = genStamp(r, 1, 6)
		}
	}
	return m
}

// recordString is a canonical text form of a record for failure messages
// and comparisons.
func recordString(rec syncproto.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{deleted:%s", rec.Deleted)
	for _, f := range slices.Sorted(maps.Keys(rec.Data)) {
		fmt.Fprintf(&b, " %s=%s@%s", f, rec.Data[f], rec.Stamps[f])
	}
	b.WriteString("}")
	return b.String()
}

func mutationString(m syncproto.Mutation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s@%s", m.Op, m.Stamp)
	for _, f := range slices.Sorted(maps.Keys(m.Data)) {
		fmt.Fprintf(&b, " %s=%s", f, m.Data[f])
	}
	for _, f := range slices.Sorted(maps.Keys(m.Base)) {
		fmt.Fprintf(&b, " base.%s=%s", f, m.Base[f])
	}
	return b.String()
}

func versionString(v syncproto.Version) string {
	if v.Deleted {
		return "delete@" + v.Stamp.String()
	}
	return string(v.Value) + "@" + v.Stamp.String()
}

// checkTombstoneInvariant fails if rec holds a field not newer than its
// tombstone, or a field without a stamp.
func checkTombstoneInvariant(tb testing.TB, rec syncproto.Record) {
	tb.Helper()
	for f := range rec.Data {
		s, ok := rec.Stamps[f]
		if !ok {
			tb.Fatalf("field %q has no stamp in %s", f, recordString(rec))
		}
		if !s.After(rec.Deleted) {
			tb.Fatalf("field %q stamp %v is not after tombstone %v in %s", f, s, rec.Deleted, recordString(rec))
		}
	}
}

const propertyRuns = 3000

func TestMerge_IsCommutative(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 1))
	for range propertyRuns {
		a, b := genRecord(r), genRecord(r)
		ab, ba := syncproto.Merge(a, b), syncproto.Merge(b, a)
		if !ab.Equal(ba) {
			t.Fatalf("Merge(a, b) != Merge(b, a)\na  = %s\nb  = %s\nab = %s\nba = %s",
				recordString(a), recordString(b), recordString(ab), recordString(ba))
		}
	}
}

func TestMerge_IsAssociative(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 2))
	for range propertyRuns {
		a, b, c := genRecord(r), genRecord(r), genRecord(r)
		left := syncproto.Merge(syncproto.Merge(a, b), c)
		right := syncproto.Merge(a, syncproto.Merge(b, c))
		if !left.Equal(right) {
			t.Fatalf("Merge is not associative\na = %s\nb = %s\nc = %s\n(ab)c = %s\na(bc) = %s",
				recordString(a), recordString(b), recordString(c), recordString(left), recordString(right))
		}
	}
}

func TestMerge_IsIdempotent(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 3))
	for range propertyRuns {
		a, b := genRecord(r), genRecord(r)
		if aa := syncproto.Merge(a, a); !aa.Equal(a) {
			t.Fatalf("Merge(a, a) != a\na  = %s\naa = %s", recordString(a), recordString(aa))
		}
		ab := syncproto.Merge(a, b)
		if again := syncproto.Merge(ab, b); !again.Equal(ab) {
			t.Fatalf("Merge(Merge(a, b), b) != Merge(a, b)\na = %s\nb = %s\nab = %s\nabb = %s",
				recordString(a), recordString(b), recordString(ab), recordString(again))
		}
		if empty := syncproto.Merge(a, syncproto.Record{}); !empty.Equal(a) {
			t.Fatalf("Merge(a, empty) != a\na = %s\ngot = %s", recordString(a), recordString(empty))
		}
	}
}

func TestMerge_DropsFieldsAtOrBelowTombstone(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 4))
	for range propertyRuns {
		a, b := genRecord(r), genRecord(r)
		checkTombstoneInvariant(t, syncproto.Merge(a, b))
	}
	t.Run("FieldStampEqualToTombstone", func(t *testing.T) {
		s := syncproto.Stamp{Wall: 5, Node: nodeA}
		a := syncproto.Record{Data: map[string]json.RawMessage{"a": json.RawMessage(`1`)}, Stamps: map[string]syncproto.Stamp{"a": s}}
		got := syncproto.Merge(a, syncproto.Record{Deleted: s})
		if got.Exists() {
			t.Fatalf("field stamped like the tombstone survived: %s", recordString(got))
		}
	})
}

func TestMerge_DoesNotModifyInputs(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 5))
	for range 500 {
		a, b := genRecord(r), genRecord(r)
		as, bs := recordString(a), recordString(b)
		syncproto.Merge(a, b)
		if recordString(a) != as || recordString(b) != bs {
			t.Fatalf("Merge modified its inputs: %s -> %s, %s -> %s", as, recordString(a), bs, recordString(b))
		}
	}
}

func TestApply_EqualsMergeOfAsRecord(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 6))
	for range propertyRuns {
		cur := genRecord(r)
		m := genMutation(r, cur, genStamp(r, 1, 8))
		next, changed, conflicts := syncproto.Apply(cur, m)
		want := syncproto.Merge(cur, m.AsRecord())
		if !next.Equal(want) {
			t.Fatalf("Apply != Merge(cur, AsRecord)\ncur = %s\nm = %s\napply = %s\nmerge = %s",
				recordString(cur), mutationString(m), recordString(next), recordString(want))
		}
		if changed != !next.Equal(cur) {
			t.Fatalf("Apply changed = %v, but next.Equal(cur) = %v\ncur = %s\nm = %s",
				changed, next.Equal(cur), recordString(cur), mutationString(m))
		}
		checkTombstoneInvariant(t, next)
		checkConflicts(t, cur, m, next, conflicts)
	}
}

// checkConflicts checks what Apply(cur, m) = next, conflicts reports: each
// conflict is on a field m touches, one side is m, the winner has the greater
// stamp and is what next holds, and no field is reported twice.
func checkConflicts(tb testing.TB, cur syncproto.Record, m syncproto.Mutation, next syncproto.Record, conflicts []syncproto.Conflict) {
	tb.Helper()
	seen := map[string]bool{}
	for _, c := range conflicts {
		fail := func(why string) {
			tb.Helper()
			tb.Fatalf("%s: conflict %s\ncur = %s\nm = %s\nnext = %s", why, conflictsString([]syncproto.Conflict{c}),
				recordString(cur), mutationString(m), recordString(next))
		}
		if seen[c.Field] {
			fail("field reported twice")
		}
		seen[c.Field] = true
		if _, inData := m.Data[c.Field]; m.Op == syncproto.OpPut && !inData {
			fail("field m does not write")
		}
		if _, visible := cur.Data[c.Field]; m.Op == syncproto.OpDelete && !visible {
			fail("delete conflict on a field that was not visible")
		}
		if c.Winner.Stamp != m.Stamp && c.Loser.Stamp != m.Stamp {
			fail("neither side is the mutation")
		}
		if !c.Winner.Stamp.After(c.Loser.Stamp) {
			fail("winner not newer than loser")
		}
		if c.Winner.Stamp.Node == c.Loser.Stamp.Node {
			fail("conflict between writes of one node")
		}
		v, ok := next.Data[c.Field]
		switch {
		case c.Winner.Deleted && ok:
			fail("winner is a delete but the field is visible")
		case !c.Winner.Deleted && (!ok || next.Stamps[c.Field] != c.Winner.Stamp || !bytes.Equal(v, c.Winner.Value)):
			fail("winner is not the value in the record")
		}
	}
}

// concurrentScenario is an initial record and mutations from distinct nodes
// that each saw (at most) the initial record: pairwise concurrent.
type concurrentScenario struct {
	initial   syncproto.Record
	mutations []syncproto.Mutation
}

func (sc concurrentScenario) String() string {
	var b strings.Builder
	b.WriteString("initial " + recordString(sc.initial))
	for i, m := range sc.mutations {
		fmt.Fprintf(&b, "\nm%d: %s", i, mutationString(m))
	}
	return b.String()
}

var writerNodes = []string{
	"00000000000000000000000000000001", "00000000000000000000000000000002",
	"00000000000000000000000000000003", "00000000000000000000000000000004",
}

// genConcurrent returns 2 to 4 concurrent mutations. Each writer's Base is,
// per field, either what it saw in the initial record or zero (it had not
// synced the record). Stamps are newer than the initial record's; if
// distinctValues, no two writes (or the initial record) share a value.
func genConcurrent(r *rand.Rand, distinctValues bool) concurrentScenario {
	sc := concurrentScenario{initial: genRecord(r)}
	n := 2 + r.IntN(3)
	next := 0
	for i := range n {
		stamp := syncproto.Stamp{Wall: 7 + r.Int64N(3), Counter: uint16(r.IntN(2)), Node: writerNodes[i]}
		m := syncproto.Mutation{ID: "m", Collection: "c", Record: "r", Stamp: stamp, Base: map[string]syncproto.Stamp{}}
		if r.IntN(3) == 0 {
			m.Op = syncproto.OpDelete
		} else {
			m.Op = syncproto.OpPut
			m.Data = map[string]json.RawMessage{}
			for len(m.Data) == 0 {
				for _, f := range genFields {
					if r.IntN(2) == 0 {
						v := genValues[r.IntN(2)] // 1 or 2: collisions are likely
						if distinctValues {
							next++
							v = fmt.Sprintf(`"w%d"`, next)
						}
						m.Data[f] = json.RawMessage(v)
					}
				}
			}
		}
		for _, f := range genFields {
			if r.IntN(4) != 0 {
				m.Base[f] = sc.initial.FieldStamp(f)
			}
		}
		sc.mutations = append(sc.mutations, m)
	}
	return sc
}

// applyInOrder applies sc's mutations in the given order and returns the
// final record and the sorted losing versions.
func applyInOrder(sc concurrentScenario, order []int) (syncproto.Record, []string) {
	rec := sc.initial
	var losers []string
	for _, i := range order {
		var conflicts []syncproto.Conflict
		rec, _, conflicts = syncproto.Apply(rec, sc.mutations[i])
		for _, c := range conflicts {
			losers = append(losers, c.Field+":"+versionString(c.Loser))
		}
	}
	slices.Sort(losers)
	return rec, losers
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

func TestApply_FinalRecordIsOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 7))
	for range 500 {
		sc := genConcurrent(r, r.IntN(2) == 0)
		perms := permutations(len(sc.mutations))
		want, _ := applyInOrder(sc, perms[0])
		for _, p := range perms[1:] {
			got, _ := applyInOrder(sc, p)
			if !got.Equal(want) {
				t.Fatalf("order %v gives %s, order %v gives %s\n%s", perms[0], recordString(want), p, recordString(got), sc)
			}
		}
	}
}

// silentLosses returns the versions Apply(cur, m) = next, conflicts drops
// without a conflict naming them and without m's writer having seen them:
// what Apply's doc comment promises never happens. A version is a field's
// value, or a delete of a visible field; one replaced by an equal value (a
// delete by a newer delete) is not lost, only restamped.
func silentLosses(cur syncproto.Record, m syncproto.Mutation, next syncproto.Record, conflicts []syncproto.Conflict) []string {
	named := func(f string, v json.RawMessage, deleted bool) bool {
		for _, c := range conflicts {
			if c.Field == f && c.Loser.Deleted == deleted && (deleted || jsonSame(c.Loser.Value, v)) {
				return true
			}
		}
		return false
	}
	var lost []string
	// Values held before m.
	for f, v := range cur.Data {
		s := cur.Stamps[f]
		nv, ok := next.Data[f]
		switch {
		case ok && jsonSame(nv, v):
		case m.Base[f] == s || m.Stamp.Node == s.Node: // m's writer saw it
		case named(f, v, false):
		default:
			lost = append(lost, fmt.Sprintf("%s=%s@%s", f, v, s))
		}
	}
	switch m.Op {
	case syncproto.OpPut:
		for f, v := range m.Data {
			nv, ok := next.Data[f]
			cs := cur.FieldStamp(f)
			switch {
			case ok && jsonSame(nv, v):
			case cs.Node == m.Stamp.Node: // beaten by its writer's own later write
			case named(f, v, false):
			default:
				lost = append(lost, fmt.Sprintf("%s=%s@%s (incoming)", f, v, m.Stamp))
			}
		}
	case syncproto.OpDelete:
		// The delete lost on every field that stays visible.
		for f := range cur.Data {
			if _, ok := next.Data[f]; !ok {
				continue
			}
			if cur.Stamps[f].Node != m.Stamp.Node && !named(f, nil, true) {
				lost = append(lost, fmt.Sprintf("%s deleted@%s (incoming)", f, m.Stamp))
			}
		}
	}
	slices.Sort(lost)
	return lost
}

func jsonSame(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// checkNoSilentLoss applies sc's mutations in order and fails if a version is
// dropped silently.
func checkNoSilentLoss(tb testing.TB, sc concurrentScenario, order []int) {
	tb.Helper()
	rec := sc.initial
	for _, i := range order {
		m := sc.mutations[i]
		next, _, conflicts := syncproto.Apply(rec, m)
		if lost := silentLosses(rec, m, next, conflicts); len(lost) > 0 {
			tb.Fatalf("order %v: applying m%d dropped %v silently\ncur = %s\nnext = %s\nconflicts = %s\n%s",
				order, i, lost, recordString(rec), recordString(next), conflictsString(conflicts), sc)
		}
		rec = next
	}
}

// TestApply_NoVersionLostSilently checks Apply's promise in every order of
// concurrent mutations: the conflicts reported may depend on the order, but a
// losing version is never dropped without either a conflict naming it or a
// later write whose writer saw it.
func TestApply_NoVersionLostSilently(t *testing.T) {
	t.Run("DetectorSeesASilentLoss", func(t *testing.T) {
		cur := syncproto.Record{Data: map[string]json.RawMessage{"a": json.RawMessage(`1`)},
			Stamps: map[string]syncproto.Stamp{"a": {Wall: 2, Node: nodeB}}}
		m := syncproto.Mutation{Op: syncproto.OpPut, Stamp: syncproto.Stamp{Wall: 3, Node: nodeC},
			Data: map[string]json.RawMessage{"a": json.RawMessage(`2`)}}
		next, _, conflicts := syncproto.Apply(cur, m)
		if len(silentLosses(cur, m, next, conflicts)) != 0 {
			t.Fatal("loss reported although Apply named the loser")
		}
		if len(silentLosses(cur, m, next, nil)) == 0 {
			t.Fatal("silentLosses missed an unreported overwrite")
		}
	})
	for _, tt := range []struct {
		name     string
		distinct bool
		stream   uint64
	}{{"DistinctValues", true, 8}, {"RepeatedValues", false, 9}} {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(testSeed(t), tt.stream))
			for range 500 {
				sc := genConcurrent(r, tt.distinct)
				for _, p := range permutations(len(sc.mutations)) {
					checkNoSilentLoss(t, sc, p)
				}
			}
		})
	}
}

// TestApply_LosersDependOnOrder holds minimal cases where the losers Apply
// reports depend on the order of concurrent mutations (as Apply's doc comment
// allows), and checks each order still loses nothing silently.
func TestApply_LosersDependOnOrder(t *testing.T) {
	st := func(wall int64, node string) syncproto.Stamp { return syncproto.Stamp{Wall: wall, Node: node} }
	put := func(s syncproto.Stamp, f, v string) syncproto.Mutation {
		return syncproto.Mutation{Op: syncproto.OpPut, Stamp: s, Data: map[string]json.RawMessage{f: json.RawMessage(v)}}
	}
	del := func(s syncproto.Stamp) syncproto.Mutation {
		return syncproto.Mutation{Op: syncproto.OpDelete, Stamp: s}
	}
	n1, n2, n3 := writerNodes[0], writerNodes[1], writerNodes[2]
	tests := []struct {
		name string
		sc   concurrentScenario
	}{
		{
			// x@1 and x@2 agree, so whichever of them is applied second is no
			// conflict with the first; but if y@3 is applied first, both are.
			name: "SameValueTwice",
			sc: concurrentScenario{initial: syncproto.Record{}, mutations: []syncproto.Mutation{
				put(st(1, n1), "a", `"x"`), put(st(2, n2), "a", `"x"`), put(st(3, n3), "a", `"y"`),
			}},
		},
		{
			// Two deletes older than a put: each delete loses to the put only
			// if the put is already there (a delete checks only visible
			// fields); the put applied last meets a single tombstone.
			name: "TwoDeletesAndANewerPut",
			sc: concurrentScenario{initial: syncproto.Record{}, mutations: []syncproto.Mutation{
				del(st(1, n1)), del(st(2, n2)), put(st(3, n3), "a", `1`),
			}},
		},
		{
			// The put's writer had not seen a@1 (Base zero); the delete's
			// writer had. Put first: a@1 loses to the put, then the delete
			// loses to the put. Delete first: only the delete is reported.
			name: "DeleteThenPutWithStaleBase",
			sc: concurrentScenario{
				initial: syncproto.Record{
					Data:   map[string]json.RawMessage{"a": json.RawMessage(`0`)},
					Stamps: map[string]syncproto.Stamp{"a": st(1, nodeA)},
				},
				mutations: []syncproto.Mutation{
					{Op: syncproto.OpDelete, Stamp: st(2, n1), Base: map[string]syncproto.Stamp{"a": st(1, nodeA)}},
					put(st(3, n2), "a", `1`),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perms := permutations(len(tt.sc.mutations))
			differ := false
			_, first := applyInOrder(tt.sc, perms[0])
			for _, p := range perms {
				checkNoSilentLoss(t, tt.sc, p)
				_, got := applyInOrder(tt.sc, p)
				t.Logf("order %v: losers %v", p, got)
				differ = differ || !slices.Equal(got, first)
			}
			if !differ {
				t.Errorf("losers are the same in every order: the counterexample no longer shows order dependence")
			}
		})
	}
}

func TestApply_ConflictRules(t *testing.T) {
	var (
		s1 = syncproto.Stamp{Wall: 100, Node: nodeA}
		s2 = syncproto.Stamp{Wall: 200, Node: nodeB}
		s3 = syncproto.Stamp{Wall: 300, Node: nodeC}
		s4 = syncproto.Stamp{Wall: 400, Node: nodeA}
	)
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	rec := func(deleted syncproto.Stamp, kv ...any) syncproto.Record {
		r := syncproto.Record{Data: map[string]json.RawMessage{}, Stamps: map[string]syncproto.Stamp{}, Deleted: deleted}
		for i := 0; i < len(kv); i += 3 {
			f := kv[i].(string)
			r.Data[f] = raw(kv[i+1].(string))
			r.Stamps[f] = kv[i+2].(syncproto.Stamp)
		}
		return r
	}
	put := func(s syncproto.Stamp, base map[string]syncproto.Stamp, kv ...string) syncproto.Mutation {
		m := syncproto.Mutation{Op: syncproto.OpPut, Stamp: s, Base: base, Data: map[string]json.RawMessage{}}
		for i := 0; i < len(kv); i += 2 {
			m.Data[kv[i]] = raw(kv[i+1])
		}
		return m
	}
	del := func(s syncproto.Stamp, base map[string]syncproto.Stamp) syncproto.Mutation {
		return syncproto.Mutation{Op: syncproto.OpDelete, Stamp: s, Base: base}
	}
	base := func(kv ...any) map[string]syncproto.Stamp {
		b := map[string]syncproto.Stamp{}
		for i := 0; i < len(kv); i += 2 {
			b[kv[i].(string)] = kv[i+1].(syncproto.Stamp)
		}
		return b
	}
	tests := []struct {
		name      string
		cur       syncproto.Record
		m         syncproto.Mutation
		want      syncproto.Record
		changed   bool
		conflicts []syncproto.Conflict
	}{
		{
			name:    "InsertIntoEmpty",
			cur:     syncproto.Record{},
			m:       put(s1, nil, "a", `1`),
			want:    rec(syncproto.Stamp{}, "a", `1`, s1),
			changed: true,
		},
		{
			name:    "SequentialOverwrite",
			cur:     rec(syncproto.Stamp{}, "a", `1`, s1),
			m:       put(s2, base("a", s1), "a", `2`),
			want:    rec(syncproto.Stamp{}, "a", `2`, s2),
			changed: true,
		},
		{
			name:    "SameNodeNoBase",
			cur:     rec(syncproto.Stamp{}, "a", `1`, s1),
			m:       put(s4, nil, "a", `2`),
			want:    rec(syncproto.Stamp{}, "a", `2`, s4),
			changed: true,
		},
		{
			name:    "ConcurrentDifferentValuesIncomingWins",
			cur:     rec(syncproto.Stamp{}, "a", `1`, s2),
			m:       put(s3, base("a", s1), "a", `2`),
			want:    rec(syncproto.Stamp{}, "a", `2`, s3),
			changed: true,
			conflicts: []syncproto.Conflict{{Field: "a",
				Winner: syncproto.Version{Value: raw(`2`), Stamp: s3},
				Loser:  syncproto.Version{Value: raw(`1`), Stamp: s2}}},
		},
		{
			name:    "ConcurrentDifferentValuesCurrentWins",
			cur:     rec(syncproto.Stamp{}, "a", `1`, s3),
			m:       put(s2, base("a", s1), "a", `2`),
			want:    rec(syncproto.Stamp{}, "a", `1`, s3),
			changed: false,
			conflicts: []syncproto.Conflict{{Field: "a",
				Winner: syncproto.Version{Value: raw(`1`), Stamp: s3},
				Loser:  syncproto.Version{Value: raw(`2`), Stamp: s2}}},
		},
		{
			name:    "ConcurrentSameValue",
			cur:     rec(syncproto.Stamp{}, "a", `{"k":1}`, s2),
			m:       put(s3, base("a", s1), "a", `{ "k" : 1 }`),
			want:    rec(syncproto.Stamp{}, "a", `{ "k" : 1 }`, s3),
			changed: true,
		},
		{
			name:    "OnlyWrittenFieldsConflict",
			cur:     rec(syncproto.Stamp{}, "a", `1`, s2, "b", `1`, s2),
			m:       put(s3, nil, "b", `2`),
			want:    rec(syncproto.Stamp{}, "a", `1`, s2, "b", `2`, s3),
			changed: true,
			conflicts: []syncproto.Conflict{{Field: "b",
				Winner: syncproto.Version{Value: raw(`2`), Stamp: s3},
				Loser:  syncproto.Version{Value: raw(`1`), Stamp: s2}}},
		},
		{
			name:    "SequentialDelete",
			cur:     rec(syncproto.Stamp{}, "a", `1`, s1, "b", `2`, s2),
			m:       del(s3, base("a", s1, "b", s2)),
			want:    rec(s3),
			changed: true,
		},
		{
			name:    "DeleteNewerThanConcurrentEdit",
			cur:     rec(syncproto.Stamp{}, "a", `2`, s2),
			m:       del(s3, base("a", s1)),
			want:    rec(s3),
			changed: true,
			conflicts: []syncproto.Conflict{{Field: "a",
				Winner: syncproto.Version{Deleted: true, Stamp: s3},
				Loser:  syncproto.Version{Value: raw(`2`), Stamp: s2}}},
		},
		{
			name:    "DeleteOlderThanConcurrentEdit",
			cur:     rec(syncproto.Stamp{}, "a", `2`, s3),
			m:       del(s2, base("a", s1)),
			want:    rec(s2, "a", `2`, s3),
			changed: true, // the tombstone is recorded even though the edit survives
			conflicts: []syncproto.Conflict{{Field: "a",
				Winner: syncproto.Version{Value: raw(`2`), Stamp: s3},
				Loser:  syncproto.Version{Deleted: true, Stamp: s2}}},
		},
		{
			name:    "EditNewerThanConcurrentDelete",
			cur:     rec(s2),
			m:       put(s3, base("a", s1), "a", `2`),
			want:    rec(s2, "a", `2`, s3),
			changed: true,
			conflicts: []syncproto.Conflict{{Field: "a",
				Winner: syncproto.Version{Value: raw(`2`), Stamp: s3},
				Loser:  syncproto.Version{Deleted: true, Stamp: s2}}},
		},
		{
			name:    "EditOlderThanConcurrentDelete",
			cur:     rec(s3),
			m:       put(s2, base("a", s1), "a", `2`),
			want:    rec(s3),
			changed: false,
			conflicts: []syncproto.Conflict{{Field: "a",
				Winner: syncproto.Version{Deleted: true, Stamp: s3},
				Loser:  syncproto.Version{Value: raw(`2`), Stamp: s2}}},
		},
		{
			name:    "PutAfterSeenDeleteResurrectsOnlyNewFields",
			cur:     rec(s2),
			m:       put(s3, base("a", s2), "a", `3`),
			want:    rec(s2, "a", `3`, s3),
			changed: true,
		},
		{
			name:    "DeleteOfDeleted",
			cur:     rec(s2),
			m:       del(s3, nil),
			want:    rec(s3),
			changed: true,
		},
		{
			name:    "ReplayIsNoChange",
			cur:     rec(syncproto.Stamp{}, "a", `1`, s2),
			m:       put(s2, base("a", s1), "a", `1`),
			want:    rec(syncproto.Stamp{}, "a", `1`, s2),
			changed: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, conflicts := syncproto.Apply(tt.cur, tt.m)
			if !got.Equal(tt.want) {
				t.Errorf("record = %s, want %s", recordString(got), recordString(tt.want))
			}
			if changed != tt.changed {
				t.Errorf("changed = %v, want %v", changed, tt.changed)
			}
			if !conflictsEqual(conflicts, tt.conflicts) {
				t.Errorf("conflicts = %s, want %s", conflictsString(conflicts), conflictsString(tt.conflicts))
			}
		})
	}

	t.Run("PutAfterDeleteResurrectsOnlyNewFields", func(t *testing.T) {
		cur := rec(syncproto.Stamp{}, "a", `1`, s1, "b", `2`, s1)
		cur, _, _ = syncproto.Apply(cur, del(s2, base("a", s1, "b", s1)))
		if cur.Exists() {
			t.Fatalf("after delete: %s", recordString(cur))
		}
		cur, _, c := syncproto.Apply(cur, put(s3, base("a", cur.FieldStamp("a")), "a", `5`))
		if len(c) != 0 {
			t.Fatalf("conflicts %s for a put that saw the delete", conflictsString(c))
		}
		if want := rec(s2, "a", `5`, s3); !cur.Equal(want) {
			t.Fatalf("record = %s, want %s (b must stay deleted)", recordString(cur), recordString(want))
		}
	})
	t.Run("DeleteReportsEveryConflictingFieldSorted", func(t *testing.T) {
		cur := rec(syncproto.Stamp{}, "c", `1`, s2, "a", `1`, s2, "b", `1`, s1)
		_, _, c := syncproto.Apply(cur, del(s3, base("b", s1)))
		var fields []string
		for _, x := range c {
			fields = append(fields, x.Field)
		}
		if !slices.Equal(fields, []string{"a", "c"}) {
			t.Fatalf("conflict fields = %v, want [a c]", fields)
		}
	})
}

func conflictsEqual(a, b []syncproto.Conflict) bool {
	return conflictsString(a) == conflictsString(b)
}

func conflictsString(cs []syncproto.Conflict) string {
	parts := []string{}
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s: winner %s loser %s", c.Field, versionString(c.Winner), versionString(c.Loser)))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}
