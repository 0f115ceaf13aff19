package sampledata_test

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/internal/sampledata"
	"github.com/ponte-project/ponte/records"
)

// TestSamples_AreValidRecords: benchmarks and demos use records the server
// accepts.
func TestSamples_AreValidRecords(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sites := []string{uuid.NewString(), uuid.NewString()}
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	size := 0
	for i := range 2000 {
		for collection, fields := range map[string]map[string]any{
			records.Persons:      sampledata.Person(r, sites),
			records.Appointments: sampledata.Appointment(r, sites, uuid.NewString(), now),
		} {
			b, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(b, &data); err != nil {
				t.Fatal(err)
			}
			if err := records.Schema.Check(collection, uuid.NewString(), data, now); err != nil {
				t.Fatalf("sample %d of %s is invalid: %v\n%s", i, collection, err, b)
			}
			if collection == records.Persons {
				size += len(b)
			}
		}
	}
	t.Logf("mean person: %d bytes of JSON", size/2000)
}
