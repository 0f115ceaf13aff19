package store

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

// A batch committed but not yet synced is told to nobody: its results wait,
// pulls of every kind wait, the welcome's seq stays short of it, and its
// changes are broadcast only once the WAL is synced.
func TestStore_NothingOfABatchShowsBeforeItIsDurable(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var broadcast []int64
	var st *Store
	st, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{OnCommit: func(cs []Committed) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			// A device sent this seq may reconnect at once: the welcome's
			// seq must not be behind it, or the device would think the
			// server lost history and pull everything again.
			if last := st.LastSeq(); last < c.Seq {
				t.Errorf("broadcast of seq %d while LastSeq is %d", c.Seq, last)
			}
			broadcast = append(broadcast, c.Seq)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	site := scope.Site("s1")
	muts := func(n int) []syncproto.Mutation {
		out := make([]syncproto.Mutation, n)
		for i := range out {
			out[i] = syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: "persons", Record: uuid.NewString(),
				Op: syncproto.OpPut, Data: map[string]json.RawMessage{"given_name": json.RawMessage(`"Amina"`), "site_id": json.RawMessage(`"s1"`)},
				Stamp: syncproto.Stamp{Wall: time.Now().UnixMilli(), Node: testNode}}
		}
		return out
	}
	sent := func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		return append([]int64(nil), broadcast...)
	}
	actor := Actor{User: "u", Node: testNode, Scopes: []string{scope.All}}
	if _, err := st.Apply(ctx, actor, muts(2)); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); len(sent()) < 2 && time.Since(start) < 5*time.Second; { // broadcast after Apply returns
		time.Sleep(time.Millisecond)
	}
	pulled := func() (all, scoped int) {
		t.Helper()
		p, err := st.Pull(ctx, []string{scope.All}, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		q, err := st.Pull(ctx, []string{site}, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		if p.Cursors[scope.All] != int64(len(p.Changes)) || q.Cursors[site] != int64(len(q.Changes)) {
			t.Fatalf("cursors %v and %v for %d and %d changes", p.Cursors, q.Cursors, len(p.Changes), len(q.Changes))
		}
		return len(p.Changes), len(q.Changes)
	}
	if all, scoped := pulled(); all != 2 || scoped != 2 || st.LastSeq() != 2 || len(sent()) != 2 {
		t.Fatalf("after a synced batch: pulls %d and %d, last seq %d, broadcast %v; want 2", all, scoped, st.LastSeq(), sent())
	}

	st.sync.close() // no more syncs until the test asks for one
	a, err := st.ApplyNoWait(ctx, actor, muts(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range a.Results {
		if r.Status != syncproto.StatusApplied {
			t.Fatalf("result %+v", r)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := a.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait before the sync = %v, want the deadline", err)
	}
	for _, held := range []string{scope.All, site} {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		p, err := st.Pull(short, []string{held}, nil, 100)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("pull through %s before the sync = %v (page %v); want it to wait", held, err, p != nil)
		}
	}
	if st.LastSeq() != 2 || len(sent()) != 2 {
		t.Fatalf("before the sync: last seq %d, broadcast %v; want 2", st.LastSeq(), sent())
	}

	st.sync.sync()
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if all, scoped := pulled(); all != 5 || scoped != 5 || st.LastSeq() != 5 || !slices.Equal(sent(), []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("after the sync: pulls %d and %d, last seq %d, broadcast %v; want 5", all, scoped, st.LastSeq(), sent())
	}
}

// A failed fsync leaves everything after it undurable for good: waits for
// it fail, it is not broadcast, and no batch is applied any more.
func TestSyncer_FailedSyncIsFinal(t *testing.T) {
	called := false
	y := newSyncer(func() error { return errors.New("EIO") }, 7, func([]Committed) { called = true })
	defer y.close()
	if err := y.waitAnnounced(context.Background(), 7); err != nil {
		t.Fatalf("wait for what was durable at start: %v", err)
	}
	n := y.commit(8, []Committed{{Change: syncproto.Change{Seq: 8}}})
	if err := y.waitCommit(context.Background(), n); err == nil {
		t.Fatal("wait after a failed fsync = nil")
	}
	if err := y.waitAnnounced(context.Background(), 7); err != nil {
		t.Fatalf("wait for what was durable before the failure: %v", err)
	}
	if y.failed() == nil {
		t.Fatal("failed() = nil after a failed fsync")
	}
	y.close()
	if called || y.durable.Load() != 7 {
		t.Fatalf("broadcast %v, durable %d after a failed fsync", called, y.durable.Load())
	}
}

// Store.Err reports a failed fsync (for the health check), and every
// writer then refuses to write: Linux may have dropped pages of the log,
// and a write after the gap could vanish at the next start.
func TestStore_ErrAfterAFailedSync(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t)
	if err := st.Err(); err != nil {
		t.Fatalf("Err of a new store = %v", err)
	}
	st.sync.close()
	eio := errors.New("EIO")
	st.sync = newSyncer(func() error { return eio }, st.LastSeq(), nil)
	actor := Actor{User: "u", Node: testNode, Scopes: []string{scope.All}}
	put := func() syncproto.Mutation {
		return syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: "persons", Record: uuid.NewString(), Op: syncproto.OpPut,
			Data: map[string]json.RawMessage{"given_name": json.RawMessage(`"Amina"`)}, Stamp: syncproto.Stamp{Wall: time.Now().UnixMilli(), Node: testNode}}
	}
	if _, err := st.Apply(ctx, actor, []syncproto.Mutation{put()}); err == nil {
		t.Fatal("Apply with a failing fsync = nil")
	}
	if st.Err() == nil {
		t.Fatal("Err after a failed fsync = nil")
	}
	if _, err := st.ApplyNoWait(ctx, actor, []syncproto.Mutation{put()}); !errors.Is(err, eio) {
		t.Fatalf("ApplyNoWait after a failed fsync = %v", err)
	}
	if _, err := st.AddSite(ctx, "Sportello Nord"); !errors.Is(err, eio) {
		t.Fatalf("AddSite after a failed fsync = %v", err)
	}
	if err := st.RevokeDevice(ctx, "d1"); !errors.Is(err, eio) {
		t.Fatalf("RevokeDevice after a failed fsync = %v", err)
	}
	if _, _, err := st.IssueEnrolmentCode(ctx, "u"); !errors.Is(err, eio) {
		t.Fatalf("IssueEnrolmentCode after a failed fsync = %v", err)
	}
}

// A batch whose writes all lost to newer ones moves no sequence number,
// yet logs them and their conflicts: its answer waits for the disk too.
func TestStore_ABatchThatChangesNothingStillWaitsForTheDisk(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t)
	putPerson(t, st, "p1", "Amina", time.Now().UnixMilli())
	seq := st.LastSeq()
	st.sync.close() // no more syncs until the test asks for one
	older := syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: "persons", Record: "p1", Op: syncproto.OpPut,
		Data: map[string]json.RawMessage{"given_name": json.RawMessage(`"Aminata"`)}, Stamp: syncproto.Stamp{Wall: 1, Node: testNode}}
	a, err := st.ApplyNoWait(ctx, Actor{User: "u", Node: testNode, Scopes: []string{scope.All}}, []syncproto.Mutation{older})
	if err != nil || a.Results[0].Status != syncproto.StatusApplied || st.LastSeq() != seq {
		t.Fatalf("a losing write: %+v, %v, seq %d -> %d", a, err, seq, st.LastSeq())
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := a.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait before the sync = %v, want the deadline", err)
	}
	st.sync.sync()
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}
