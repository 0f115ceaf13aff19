package records

import (
	"fmt"
	"math/rand/v2"
	"regexp"
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

// TestUUIDRule_IsValidatorsOwn checks the uuid rule against the regular
// expression validator/v10 uses for it.
func TestUUIDRule_IsValidatorsOwn(t *testing.T) {
	builtin := regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	type form struct {
		ID string `validate:"uuid"`
	}
	cases := []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
		"a0eebc99-9C0B-4ef8-bb6d-6bb9bd380a11", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", "a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a11", "", "a0eebc99-9c0b-4ef8-bb6d"}
	for _, c := range cases {
		if got, want := validate.Struct(form{ID: c}) == nil, builtin.MatchString(c); got != want {
			t.Errorf("uuid rule on %q: %v, validator's own says %v", c, got, want)
		}
	}
}
