package authwatch

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// docs/status-file.md lists every key of the status file, and says whether it
// is always there or left out when empty: the same as the Status type's JSON
// tags, so the documentation cannot drift from the file.
func TestStatusFileDocMatchesStatus(t *testing.T) {
	data, err := os.ReadFile("../docs/status-file.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "<!-- status-keys:begin -->")
	table, _, ok2 := strings.Cut(table, "<!-- status-keys:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/status-file.md: the status-keys markers are missing")
	}
	documented := map[string]string{} // key -> "always" or "when set"
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		documented[strings.Trim(strings.TrimSpace(cells[1]), "`")] = strings.TrimSpace(cells[2])
	}

	typ := reflect.TypeOf(Status{})
	for i := 0; i < typ.NumField(); i++ {
		name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		want := "always"
		if strings.Contains(opts, "omitempty") {
			want = "when set"
		}
		got, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("status key %q is not documented in docs/status-file.md", name)
		case got != want:
			t.Errorf("docs/status-file.md says %q is present %q; the file has it %q", name, got, want)
		}
		delete(documented, name)
	}
	for name := range documented {
		t.Errorf("docs/status-file.md documents %q, which the status file does not have", name)
	}
}
