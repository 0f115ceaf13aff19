package syncproto_test

import (
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/internal/sampledata"
	"github.com/ponte-project/ponte/syncproto"
)

// BenchmarkDecode_Page measures decoding a full page of intake forms, the
// client's work per page of a first sync besides inflating and applying it.
func BenchmarkDecode_Page(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	sites := []string{uuid.NewString(), uuid.NewString()}
	st := syncproto.Stamp{Wall: 1763900000000, Node: "0123456789abcdef0123456789abcdef"}
	page := &syncproto.Page{Cursors: map[string]int64{"all": syncproto.MaxPage}}
	for i := range syncproto.MaxPage {
		rec := syncproto.Record{Data: sampledata.PersonData(r, sites), Stamps: map[string]syncproto.Stamp{}}
		for k := range rec.Data {
			rec.Stamps[k] = st
		}
		page.Changes = append(page.Changes, syncproto.NewChange("persons", uuid.NewString(), int64(i+1), rec))
	}
	frame, err := syncproto.Encode(&syncproto.Message{Type: syncproto.TypePage, Re: 1, Page: page})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := syncproto.Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*syncproto.MaxPage), "ns/change")
}

// BenchmarkDecode_Push measures decoding a push of 1000 intake forms, the
// server's work per push frame before it judges and applies the writes.
func BenchmarkDecode_Push(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	sites := []string{uuid.NewString(), uuid.NewString()}
	muts := make([]syncproto.Mutation, syncproto.MaxBatch)
	for i := range muts {
		muts[i] = syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: "persons", Record: uuid.NewString(),
			Op: syncproto.OpPut, Data: sampledata.PersonData(r, sites),
			Stamp: syncproto.Stamp{Wall: 1763900000000, Counter: uint16(i), Node: "0123456789abcdef0123456789abcdef"}}
	}
	frame, err := syncproto.Encode(&syncproto.Message{Type: syncproto.TypePush, Re: 1, Push: &syncproto.Push{Mutations: muts}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := syncproto.Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*syncproto.MaxBatch), "ns/mutation")
}
