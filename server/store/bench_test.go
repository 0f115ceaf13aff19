package store_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/internal/sampledata"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// BenchmarkStore_Apply measures applying pushes of 1000 new intake forms
// as the server does: decoded from a push frame, checked against the
// records schema, under a cancellable context, synced to disk per batch.
func BenchmarkStore_Apply(b *testing.B) {
	st := mustOpen(b, filepath.Join(b.TempDir(), "s.db"), store.Options{Schema: records.Schema})
	r := rand.New(rand.NewPCG(1, 2))
	sites := []string{uuid.NewString(), uuid.NewString()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const batch = 1000
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		muts := make([]syncproto.Mutation, batch)
		now := time.Now().UnixMilli()
		for i := range muts {
			data := sampledata.PersonData(r, sites)
			// Mutation ids are UUIDv7 as clients make them; record ids random.
			muts[i] = syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: "persons",
				Record: uuid.NewString(), Op: syncproto.OpPut, Data: data,
				Stamp: syncproto.Stamp{Wall: now, Counter: uint16(i), Node: node}}
		}
		frame, err := syncproto.Encode(&syncproto.Message{Type: syncproto.TypePush, Re: 1, Push: &syncproto.Push{Mutations: muts}})
		if err != nil {
			b.Fatal(err)
		}
		m, err := syncproto.Decode(frame)
		if err != nil {
			b.Fatal(err)
		}
		for i := range m.Push.Mutations { // as the server's reader does
			if err := m.Push.Mutations[i].Validate(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		res, err := st.Apply(ctx, actor, m.Push.Mutations)
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Status != syncproto.StatusApplied {
			b.Fatalf("first mutation: %+v", res[0])
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "mutations/s")
}

// BenchmarkStore_Pull measures reading pages of 2000 records.
func BenchmarkStore_Pull(b *testing.B) {
	st := mustOpen(b, filepath.Join(b.TempDir(), "s.db"), store.Options{})
	r := rand.New(rand.NewPCG(1, 2))
	sites := []string{uuid.NewString()}
	now := time.Now().UnixMilli()
	for range 10 {
		muts := make([]syncproto.Mutation, 1000)
		for i := range muts {
			data := sampledata.PersonData(r, sites)
			muts[i] = syncproto.Mutation{ID: uuid.NewString(), Collection: "persons", Record: uuid.NewString(),
				Op: syncproto.OpPut, Data: data, Stamp: syncproto.Stamp{Wall: now, Counter: uint16(i), Node: node}}
		}
		if _, err := st.Apply(context.Background(), actor, muts); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		page, err := st.Pull(context.Background(), []string{scope.All}, map[string]int64{scope.All: int64(r.IntN(8000))}, 2000)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := syncproto.Encode(&syncproto.Message{Type: syncproto.TypePage, Page: page}); err != nil {
			b.Fatal(err)
		}
		n += len(page.Changes)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
