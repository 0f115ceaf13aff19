package scope

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestKeys_ReadsIDsInEveryJSONForm checks that a site or course id is read
// the same whether it is a plain string, holds escapes, or is not a string.
func TestKeys_ReadsIDsInEveryJSONForm(t *testing.T) {
	cases := []struct {
		collection, raw string
		want            []string
	}{
		{"persons", `"s1"`, []string{"site:s1"}},
		{"appointments", `"s\u0031"`, []string{"site:s1"}},
		{"persons", `"a\"b"`, []string{`site:a"b`}},
		{"persons", `""`, nil},
		{"persons", `12`, nil},
		{"persons", `null`, nil},
		{"lessons", `"c1"`, []string{"course:c1"}},
	}
	for _, c := range cases {
		field := "site_id"
		if c.collection == "lessons" {
			field = "course_id"
		}
		got := Keys(c.collection, "r1", map[string]json.RawMessage{field: json.RawMessage(c.raw)})
		if !slices.Equal(got, c.want) {
			t.Errorf("Keys(%s, %s: %s) = %q, want %q", c.collection, field, c.raw, got, c.want)
		}
	}
	if got := Keys("courses", "c9", nil); !slices.Equal(got, []string{"course:c9"}) {
		t.Errorf("a course is in its own scope: %q", got)
	}
}
