package fleet

import (
	"fmt"
	"os"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// State is what the follower knows about the store, for status and health.
type State struct {
	Store      string    // redacted URL and credential name
	State      string    // "connecting", "ok", "unavailable", "fallback", "error"
	Error      string    // password- and token-free; "" when ok
	Since      time.Time // when State last changed
	Generation int64     // stored generation last seen (0 unknown)
}

// State reports the follower's view of the store.
func (f *Fleet) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// Changed fires (coalesced) whenever State changes.
func (f *Fleet) Changed() <-chan struct{} { return f.changed }

func (f *Fleet) setState(state string, err error, gen int64) {
	f.mu.Lock()
	prev := f.state
	f.state.State = state
	f.state.Error = ""
	if err != nil {
		f.state.Error = secreturl.Mask(err.Error())
	}
	if gen > 0 {
		f.state.Generation = gen
	}
	if prev.State != f.state.State {
		f.state.Since = time.Now()
	}
	f.connected = state == "ok" || state == "error"
	changed := prev.State != f.state.State || prev.Error != f.state.Error || prev.Generation != f.state.Generation
	now := f.state
	f.mu.Unlock()
	if changed {
		f.writeState(now)
		select {
		case f.changed <- struct{}{}:
		default:
		}
	}
}

func (f *Fleet) setStored(gen int64, a *authwatch.AuthFile) {
	f.mu.Lock()
	f.stored = a
	f.mu.Unlock()
	f.setState("ok", nil, gen)
}

func redactErr(err error) string { return secreturl.Mask(err.Error()) }

// redactedError keeps err's identity (errors.Is) with a password-free text.
func redactedError(err error) error {
	if err == nil {
		return nil
	}
	msg := redactErr(err)
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }

func (r *redacted) Unwrap() error { return r.err }

// StateFileName is the follower's own status file in CODEX_HOME. It is
// separate from the watchdog's status file so that the two writers never
// overwrite each other; `status` and `health` read both.
const StateFileName = "codex_launch_store_status.json"

// stateJSON is State as written to the file.
type stateJSON struct {
	Store      string `json:"store"`
	State      string `json:"store_state"`
	Error      string `json:"store_error,omitempty"`
	Since      string `json:"store_state_since"`
	Generation int64  `json:"store_generation,omitempty"`
	Name       string `json:"credential_name"`
	Fallback   bool   `json:"fallback_refresh"`
	PID        int    `json:"pid"`
}

// writeState records st in CODEX_HOME as authwatch writes its own status
// file (Home.WriteJSON: atomic, 0600, owned like auth.json): a launcher or a
// `refresh` run as root must not leave a root-owned file in the CLI user's
// directory. Failures are logged, never fatal: the file is for operators.
func (f *Fleet) writeState(st State) {
	err := f.cfg.Home.WriteJSON(StateFileName, stateJSON{
		Store: st.Store, State: st.State, Error: st.Error, Since: st.Since.UTC().Format(time.RFC3339),
		Generation: st.Generation, Name: f.cfg.Name, Fallback: f.cfg.Fallback, PID: os.Getpid(),
	})
	if err != nil {
		f.log.Warn("store status file not written", "error", err)
	}
}

// ReadState reads the follower's status file from CODEX_HOME dir, bounded
// and only a regular file, as authwatch reads its own (Home.ReadJSON).
func ReadState(dir string) (State, error) {
	var j stateJSON
	if err := (authwatch.Home{Dir: dir}).ReadJSON(StateFileName, &j); err != nil {
		return State{}, fmt.Errorf("reading the store status: %w", err)
	}
	st := State{Store: j.Store, State: j.State, Error: j.Error, Generation: j.Generation}
	st.Since, _ = time.Parse(time.RFC3339, j.Since)
	return st, nil
}
