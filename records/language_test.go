package records

import (
	"testing"

	"golang.org/x/text/language"
)

// TestIsLanguage_RemembersWhatXTextSays checks the remembered answers
// against x/text for every string of two or three lowercase letters, asked
// twice, and that anything else is no language.
func TestIsLanguage_RemembersWhatXTextSays(t *testing.T) {
	var buf [3]byte
	for n := 2; n <= 3; n++ {
		for i := range 1 << (5 * n) {
			code, letters := buf[:n], true
			for j := range n {
				c := (i >> (5 * j)) & 31
				letters = letters && c < 26
				code[j] = byte('a' + c)
			}
			if !letters {
				continue
			}
			_, err := language.ParseBase(string(code))
			for range 2 {
				if got := isLanguage(string(code)); got != (err == nil) {
					t.Fatalf("isLanguage(%q) = %v, x/text says %v", code, got, err == nil)
				}
			}
		}
	}
	for _, s := range []string{"", "e", "EN", "En", "eng1", "e-", "fr ", "zz{", "é", "engl"} {
		if isLanguage(s) {
			t.Errorf("isLanguage(%q) = true", s)
		}
	}
}
