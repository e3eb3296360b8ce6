package authwatch

import (
	"strings"
	"testing"
)

// safeCode replaced a regexp; it must accept and refuse exactly what
// ^[A-Za-z0-9_.:-]{1,64}$ did.
func TestSafeCode(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{"invalid_grant", true},
		{"refresh_token_reused", true},
		{"a.b:c-d_E9", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"has space", false},
		{"eyJ/token+", false},
		{"ünï", false},
		{"line\nbreak", false},
	} {
		if got := safeCode(c.s); got != c.ok {
			t.Errorf("safeCode(%q) = %v, want %v", c.s, got, c.ok)
		}
	}
}
