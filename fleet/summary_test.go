package fleet

import (
	"strings"
	"testing"
)

func TestStoreSummaryOnlyForAPostgresStore(t *testing.T) {
	if s := ReadSummary(Settings{}, t.TempDir()); s != nil {
		t.Fatalf("file store: %+v", s)
	}
	s := ReadSummary(Settings{Store: "postgres://u:pw-secret@db/x", Name: "default"}, t.TempDir())
	if s == nil || s.State != "unknown" || strings.Contains(s.Store, "pw-secret") {
		t.Fatalf("no status file yet: %+v", s)
	}
	if n := (&Summary{State: "ok"}).HealthNote(); n != "" {
		t.Fatalf("ok note %q", n)
	}
	n := (&Summary{State: "unavailable", Error: "connection refused", Since: "2026-01-01T00:00:00Z"}).HealthNote()
	if !strings.Contains(n, "unavailable") || !strings.Contains(n, "local credential") || !strings.Contains(n, "connection refused") {
		t.Fatalf("unavailable note %q", n)
	}
}
