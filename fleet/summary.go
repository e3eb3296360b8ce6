package fleet

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Summary is the shared store's state as the follower last recorded it
// in CODEX_HOME, for `status` and `health`. Token- and password-free.
type Summary struct {
	Store      string `json:"store"`
	State      string `json:"state"` // ok, connecting, unavailable, fallback, error
	Error      string `json:"error,omitempty"`
	Since      string `json:"since,omitempty"`
	Generation int64  `json:"generation,omitempty"`
}

// ReadSummary returns the state of the store s names from CODEX_HOME dir,
// or nil when s names no PostgreSQL store (a stale file from an earlier
// configuration is ignored). A state the follower has not written yet, or a
// file that is not one, is "unknown" with the reason.
func ReadSummary(s Settings, dir string) *Summary {
	if s.Kind() != KindPostgres {
		return nil
	}
	st, err := ReadState(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &Summary{Store: s.Describe(), State: "unknown", Error: "no store status yet (is the launcher running?)"}
	case err != nil:
		// A file that is not one, or too large: say which.
		return &Summary{Store: s.Describe(), State: "unknown", Error: err.Error()}
	}
	sum := &Summary{Store: st.Store, State: st.State, Error: st.Error, Generation: st.Generation}
	if !st.Since.IsZero() {
		sum.Since = st.Since.UTC().Format(time.RFC3339)
	}
	return sum
}

// HealthNote is what a health verdict adds: "" when the store is fine.
// The store's absence does not make the container unhealthy by itself: the
// child keeps working on the local credential, and restarting the container
// would not bring the database back. It must be said, though.
func (s *Summary) HealthNote() string {
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
