package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/internal/sampledata"
	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/syncproto"
)

// BenchmarkClient_ApplyPage measures applying pages of 5000 new records to
// a replica, the work of a first sync once the frames are decoded.
func BenchmarkClient_ApplyPage(b *testing.B) {
	c, err := Open(context.Background(), filepath.Join(b.TempDir(), "r.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(1, 2))
	sites := []string{uuid.NewString()}
	st := syncproto.Stamp{Wall: 1763900000000, Node: "0123456789abcdef0123456789abcdef"}
	seq := int64(0)
	page := func() *syncproto.Page {
		p := &syncproto.Page{Cursors: map[string]int64{}}
		for range 5000 {
			seq++
			rec := syncproto.Record{Data: sampledata.PersonData(r, sites), Stamps: map[string]syncproto.Stamp{}}
			for k := range rec.Data {
				rec.Stamps[k] = st
			}
			p.Changes = append(p.Changes, syncproto.NewChange("persons", uuid.NewString(), seq, rec))
		}
		p.Cursors["all"] = seq
		return p
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		p := page()
		b.StartTimer()
		if err := c.inTx(context.Background(), sqlitedb.SyncNormal, func(tx *sqlitedb.Tx) error {
			_, err := c.applyPages(context.Background(), tx, p)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*5000)/b.Elapsed().Seconds(), "records/s")
	_ = fmt.Sprint()
}
