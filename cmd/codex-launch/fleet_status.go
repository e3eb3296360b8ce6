package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/molecule-ai/codex-launch/fleet"
)

// storeSummary is the shared store's state as the follower last recorded it
// in CODEX_HOME, for `status` and `health`. Token- and password-free.
type storeSummary struct {
	Store      string `json:"store"`
	State      string `json:"state"` // ok, connecting, unavailable, fallback, error
	Error      string `json:"error,omitempty"`
	Since      string `json:"since,omitempty"`
	Generation int64  `json:"generation,omitempty"`
}

// readStoreSummary returns the shared store's state, or nil when this
// launcher uses no PostgreSQL store (a stale file from an earlier
// configuration is ignored) or the follower has not written it yet.
func readStoreSummary(cfg *Config, dir string) *storeSummary {
	if cfg.Fleet.Kind() != fleet.KindPostgres {
		return nil
	}
	st, err := fleet.ReadState(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &storeSummary{Store: cfg.Fleet.Describe(), State: "unknown", Error: "no store status yet (is the launcher running?)"}
	case err != nil:
		// A file that is not one, or too large: say which.
		return &storeSummary{Store: cfg.Fleet.Describe(), State: "unknown", Error: err.Error()}
	}
	s := &storeSummary{Store: st.Store, State: st.State, Error: st.Error, Generation: st.Generation}
	if !st.Since.IsZero() {
		s.Since = st.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// healthNote is what `health` adds to its line: "" when the store is fine.
// The store's absence does not make the container unhealthy by itself: the
// child keeps working on the local credential, and restarting the container
// would not bring the database back. It must be said, though.
func (s *storeSummary) healthNote() string {
	if s == nil || s.State == "ok" {
		return ""
	}
	note := fmt.Sprintf("credential store %s", s.State)
	if s.Since != "" {
		note += " since " + s.Since
	}
	switch s.State {
	case "unavailable":
		note += " (the child runs on the local credential; no refresh until it returns)"
	case "fallback":
		note += " (refreshing the local credential alone: --fleet-fallback-refresh)"
	}
	if s.Error != "" {
		note += ": " + s.Error
	}
	return note
}
