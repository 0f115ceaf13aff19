package records_test

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/internal/sampledata"
	"github.com/ponte-project/ponte/records"
)

// BenchmarkSchema_Check measures checking a realistic intake form, as the
// server does for every put.
func BenchmarkSchema_Check(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	forms := make([]map[string]json.RawMessage, 256)
	for i := range forms {
		raw, _ := json.Marshal(sampledata.Person(r, []string{uuid.NewString()}))
		json.Unmarshal(raw, &forms[i])
	}
	id := uuid.NewString()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := records.Schema.Check(records.Persons, id, forms[i%len(forms)], now); err != nil {
			b.Fatal(err)
		}
	}
}
