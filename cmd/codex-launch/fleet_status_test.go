package main

import (
	"strings"
	"testing"

	"github.com/molecule-ai/codex-launch/fleet"
)

func TestStoreSummaryOnlyForAPostgresStore(t *testing.T) {
	cfg := &Config{}
	if s := readStoreSummary(cfg, t.TempDir()); s != nil {
		t.Fatalf("file store: %+v", s)
	}
	cfg.Fleet = fleet.Settings{Store: "postgres://u:pw-secret@db/x", Name: "default"}
	s := readStoreSummary(cfg, t.TempDir())
	if s == nil || s.State != "unknown" || strings.Contains(s.Store, "pw-secret") {
		t.Fatalf("no status file yet: %+v", s)
	}
	if n := (&storeSummary{State: "ok"}).healthNote(); n != "" {
		t.Fatalf("ok note %q", n)
	}
	n := (&storeSummary{State: "unavailable", Error: "connection refused", Since: "2026-01-01T00:00:00Z"}).healthNote()
	if !strings.Contains(n, "unavailable") || !strings.Contains(n, "local credential") || !strings.Contains(n, "connection refused") {
		t.Fatalf("unavailable note %q", n)
	}
}
