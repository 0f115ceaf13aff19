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
