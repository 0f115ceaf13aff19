package records

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestValidDate_AgreesWithTimeParse checks the hand-written date check
// against time.Parse on edge cases and on random near-dates.
func TestValidDate_AgreesWithTimeParse(t *testing.T) {
	cases := []string{"2024-02-29", "2023-02-29", "2000-02-29", "1900-02-29", "0000-01-01", "9999-12-31",
		"2024-13-01", "2024-00-10", "2024-04-31", "2024-04-30", "2024-1-01", "+024-01-01", "2024-01-1x",
		"2024/01/01", "", "2024-01-010", " 2024-01-01", "2024-01-00"}
	r := rand.New(rand.NewPCG(7, 11))
	for range 20000 {
		cases = append(cases, fmt.Sprintf("%04d-%02d-%02d", r.IntN(10000), r.IntN(14), r.IntN(33)))
	}
	for _, s := range cases {
		_, err := time.Parse(time.DateOnly, s)
		if got, want := validDate(s), err == nil; got != want {
			t.Errorf("validDate(%q) = %v, time.Parse says %v", s, got, want)
		}
	}
}
