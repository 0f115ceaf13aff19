package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

const node = "0123456789abcdef0123456789abcdef"

var actor = store.Actor{User: "amal", Device: "d1", Node: node, Scopes: []string{scope.All}}

func mustOpen(tb testing.TB, path string, opts store.Options) *store.Store {
	tb.Helper()
	st, err := store.Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func put(record, fields string, wall int64) syncproto.Mutation {
	var data map[string]json.RawMessage
	if err := json.Unmarshal([]byte(fields), &data); err != nil {
		panic(err)
	}
	return syncproto.Mutation{ID: uuid.NewString(), Collection: "persons", Record: record, Op: syncproto.OpPut,
		Data: data, Stamp: syncproto.Stamp{Wall: wall, Node: node}}
}

func mustApply(t *testing.T, st *store.Store, muts ...syncproto.Mutation) []syncproto.MutationResult {
	t.Helper()
	res, err := st.Apply(context.Background(), actor, muts)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

func TestStore_ApplyIsIdempotentAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := mustOpen(t, path, store.Options{})
	now := time.Now().UnixMilli()
	m := put("p1", `{"given_name":"Amina"}`, now)
	first := mustApply(t, st, m)[0]
	if first.Status != syncproto.StatusApplied || first.Seq != 1 {
		t.Fatalf("first apply = %+v", first)
	}
	st.Close()
	st = mustOpen(t, path, store.Options{})
	again := mustApply(t, st, m, put("p2", `{"given_name":"Olena"}`, now+1))
	if again[0].Status != syncproto.StatusDuplicate || again[0].Seq != 1 {
		t.Fatalf("retry after restart = %+v, want duplicate at seq 1", again[0])
	}
	if again[1].Seq != 2 {
		t.Fatalf("sequence after restart = %d, want 2 (continuing, not restarting)", again[1].Seq)
	}
	if n, _ := st.CountMutations(context.Background(), "persons", "p1"); n != 1 {
		t.Fatalf("p1 applied %d times", n)
	}
}

func TestStore_RestampsClocksFarAhead(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{})
	yearAhead := time.Now().AddDate(1, 0, 0).UnixMilli()
	m := put("p1", `{"phone":"+39000"}`, yearAhead)
	r := mustApply(t, st, m)[0]
	if r.Stamp.IsZero() || r.Stamp.Node != node || time.Until(r.Stamp.Time()) > time.Minute {
		t.Fatalf("result stamp %v: want a present-day stamp with the writer's node", r.Stamp)
	}
	rec, _, _ := st.Get(context.Background(), "persons", "p1")
	if rec.Stamps["phone"] != r.Stamp {
		t.Fatalf("stored stamp %v, answered %v", rec.Stamps["phone"], r.Stamp)
	}
	if d := mustApply(t, st, m)[0]; d.Status != syncproto.StatusDuplicate || d.Stamp != r.Stamp {
		t.Fatalf("retry = %+v, want duplicate naming the stamp it was applied with", d)
	}
	honest := put("p1", `{"phone":"+39111"}`, time.Now().UnixMilli()+10)
	honest.Stamp.Node = node
	mustApply(t, st, honest)
	rec, _, _ = st.Get(context.Background(), "persons", "p1")
	if string(rec.Data["phone"]) != `"+39111"` {
		t.Fatalf("phone = %s; a later honest write must win", rec.Data["phone"])
	}
}

func TestStore_PullPagesInOrder(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{})
	now := time.Now().UnixMilli()
	var muts []syncproto.Mutation
	for i := range 25 {
		muts = append(muts, put(fmt.Sprintf("p%02d", i), fmt.Sprintf(`{"n":%d}`, i), now+int64(i)))
	}
	mustApply(t, st, muts...)
	mustApply(t, st, put("p03", `{"n":100}`, now+100)) // p03 moves to the end
	var seen []string
	cursors := map[string]int64{}
	for pages := 0; ; pages++ {
		page, err := st.Pull(context.Background(), []string{scope.All}, cursors, 10)
		if err != nil {
			t.Fatal(err)
		}
		last := cursors[scope.All]
		for _, c := range page.Changes {
			if c.Seq <= last {
				t.Fatalf("page out of order: seq %d after %d", c.Seq, last)
			}
			last = c.Seq
			seen = append(seen, c.ID)
		}
		cursors = page.Cursors
		if !page.More {
			break
		}
		if pages > 10 {
			t.Fatal("pull never finishes")
		}
	}
	if len(seen) != 25 || seen[24] != "p03" {
		t.Fatalf("pulled %d records ending with %s; want each of 25 once, p03 last", len(seen), seen[len(seen)-1])
	}
}

func TestStore_PagesAndRecordsAreBoundedInBytes(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{})
	now := time.Now().UnixMilli()
	big := strings.Repeat("x", 200<<10)
	var muts []syncproto.Mutation
	for i := range 30 {
		muts = append(muts, put(fmt.Sprintf("p%02d", i), `{"notes":"`+big+`"}`, now+int64(i)))
	}
	mustApply(t, st, muts...)
	page, err := st.Pull(context.Background(), []string{scope.All}, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !page.More || len(page.Changes) >= 30 {
		t.Fatalf("a page of %d large records (more=%v): want it cut by size", len(page.Changes), page.More)
	}
	b, _ := syncproto.Encode(&syncproto.Message{Type: syncproto.TypePage, Page: page})
	if len(b) > syncproto.MaxFrameBytes {
		t.Fatalf("page of %d bytes exceeds a frame", len(b))
	}
	// A record may not grow past MaxRecordBytes, five fields at a time.
	var last syncproto.MutationResult
	for i := range 6 {
		last = mustApply(t, st, put("grow", fmt.Sprintf(`{"f%d":"%s"}`, i, big), now+1000+int64(i)))[0]
	}
	if last.Status != syncproto.StatusRejected || last.Code != syncproto.CodeTooLarge {
		t.Fatalf("sixth 200 KiB field = %+v, want rejected too_large", last)
	}
}

func TestStore_OnCommitInCommitOrder(t *testing.T) {
	var mu sync.Mutex
	var seqs []int64
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{OnCommit: func(cs []store.Committed) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			seqs = append(seqs, c.Seq)
		}
	}})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if _, err := st.Apply(context.Background(), actor, []syncproto.Mutation{
					put(fmt.Sprintf("w%d-%d", w, i), `{"x":1}`, time.Now().UnixMilli())}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	st.Close() // the last batches are announced once synced, maybe after Apply returned
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != 40 {
		t.Fatalf("%d changes broadcast, want 40", len(seqs))
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("broadcast %d has seq %d: commits must be announced in order", i, s)
		}
	}
}

func TestStore_Authenticate(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{})
	ctx := context.Background()
	if _, _, err := st.IssueToken(ctx, "amal"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token for an unknown user: %v, want ErrNotFound", err)
	}
	for _, name := range []string{"amal", "bruno"} {
		if err := st.AddUser(ctx, store.User{Name: name, Role: scope.Coordinator}); err != nil {
			t.Fatal(err)
		}
	}
	_, token, err := st.IssueToken(ctx, "amal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, "ponte_wrong", node); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	d, err := st.Authenticate(ctx, token, node)
	if err != nil || d.User != "amal" {
		t.Fatalf("authenticate = %+v, %v", d, err)
	}
	if _, err := st.Authenticate(ctx, token, node); err != nil {
		t.Fatalf("same replica again: %v", err)
	}
	if _, err := st.Authenticate(ctx, token, strings.Repeat("a", 32)); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Fatalf("token from another replica: %v, want ErrUnauthorized", err)
	}
	_, other, _ := st.IssueToken(ctx, "bruno")
	if _, err := st.Authenticate(ctx, other, node); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Fatalf("another device claiming amal's replica: %v, want ErrUnauthorized", err)
	}
}

func TestStore_ClockSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := mustOpen(t, path, store.Options{})
	ahead := time.Now().Add(2 * time.Minute).UnixMilli() // within MaxFuture: kept as it is
	mustApply(t, st, put("p1", `{"x":1}`, ahead))
	st.Close()
	st = mustOpen(t, path, store.Options{})
	if now := st.Clock().Now(); now.Wall < ahead {
		t.Fatalf("after a restart the server stamps %v, before the stored %d", now, ahead)
	}
}

// TestStore_SchemaJudgesEachWriteOnTheStateBeforeIt checks that a put is
// judged on the record as the writes before it in the same batch left it:
// the first write to a record is judged ahead of the loop, a later one in
// the loop.
func TestStore_SchemaJudgesEachWriteOnTheStateBeforeIt(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{Schema: records.Schema})
	now := time.Now().UnixMilli()
	site, id, other := uuid.NewString(), uuid.NewString(), uuid.NewString()
	valid := `{"site_id":"` + site + `","given_name":"Amina","family_name":"Haddad","consent_given":true,
		"consent_date":"2026-01-10","consent_language":"ar","nationality":"SY"}`
	res := mustApply(t, st,
		put(id, valid, now),
		put(id, `{"consent_given":false}`, now+1),    // the nationality then lacks consent
		put(other, `{"consent_given":false}`, now+2), // a new record without its required fields
		put(id, `{"given_name":"Amīna"}`, now+3),     // still valid: the refused write left nothing
	)
	fields := func(r syncproto.MutationResult) []string {
		var out []string
		for _, f := range r.Fields {
			out = append(out, f.Field+" "+f.Rule)
		}
		return out
	}
	if res[0].Status != syncproto.StatusApplied || res[3].Status != syncproto.StatusApplied {
		t.Fatalf("valid writes: %+v, %+v", res[0], res[3])
	}
	if got := fields(res[1]); res[1].Status != syncproto.StatusRejected || !slices.Equal(got, []string{"nationality consent_required"}) {
		t.Errorf("withdrawing consent under a nationality: %s %v, want rejected [nationality consent_required]", res[1].Status, got)
	}
	if got := fields(res[2]); res[2].Status != syncproto.StatusRejected || !slices.Contains(got, "site_id required") {
		t.Errorf("a new record without site: %s %v, want rejected with site_id required", res[2].Status, got)
	}
	rec, _, err := st.Get(context.Background(), "persons", id)
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Data["consent_given"]) != "true" || string(rec.Data["given_name"]) != `"Amīna"` {
		t.Errorf("record after the batch: %s", rec.Data)
	}
}

// TestStore_DeleteOfUnstoredCourseByItsTeacher checks that a delete of a
// record the server has not stored yet is judged by the scopes its id gives:
// a course's teacher may delete it.
func TestStore_DeleteOfUnstoredCourseByItsTeacher(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{Schema: records.Schema})
	id := uuid.NewString()
	teacher := store.Actor{User: "t", Device: "d", Node: node, Scopes: []string{scope.Course(id)}}
	m := syncproto.Mutation{ID: uuid.NewString(), Collection: records.Courses, Record: id, Op: syncproto.OpDelete,
		Stamp: syncproto.Stamp{Wall: time.Now().UnixMilli(), Node: node}}
	res, err := st.Apply(context.Background(), teacher, []syncproto.Mutation{m})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != syncproto.StatusApplied {
		t.Errorf("delete of course %s by a holder of its scope: %s %s", id, res[0].Status, res[0].Message)
	}
}
