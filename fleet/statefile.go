package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
)

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

// writeState records st in CODEX_HOME (temp file, rename, 0600), owned like
// auth.json: a launcher or a `refresh` run as root must not leave a
// root-owned file in the CLI user's directory. Failures are logged, never
// fatal: the file is for operators.
func (f *Fleet) writeState(st State) {
	if err := f.writeStateFile(st); err != nil {
		f.log.Warn("store status file not written", "error", err)
	}
}

func (f *Fleet) writeStateFile(st State) error {
	data, _ := json.MarshalIndent(stateJSON{
		Store: st.Store, State: st.State, Error: st.Error, Since: st.Since.UTC().Format(time.RFC3339),
		Generation: st.Generation, Name: f.cfg.Name, Fallback: f.cfg.Fallback, PID: os.Getpid(),
	}, "", "  ")
	dir := f.cfg.Home.Dir
	tmp, err := os.CreateTemp(dir, ".codex-launch-"+StateFileName+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if uid, gid, ok := stateOwner(f.cfg.Home); ok {
		// Not being allowed to give the file away (not root) leaves it ours,
		// as authwatch does for its status file.
		if err := tmp.Chown(uid, gid); err != nil && !errors.Is(err, os.ErrPermission) {
			tmp.Close()
			return err
		}
	}
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, StateFileName))
}

// stateOwner is who the status file belongs to: Home.Owner (the CLI's user,
// known to the launcher), else auth.json's owner, else CODEX_HOME's.
func stateOwner(h authwatch.Home) (uid, gid int, ok bool) {
	if h.Owner != nil {
		return h.Owner.UID, h.Owner.GID, true
	}
	for _, p := range []string{h.AuthPath(), h.Dir} {
		if fi, err := os.Stat(p); err == nil {
			if st, isStat := fi.Sys().(*syscall.Stat_t); isStat {
				return int(st.Uid), int(st.Gid), true
			}
		}
	}
	return 0, 0, false
}

// ReadState reads the follower's status file from CODEX_HOME dir.
func ReadState(dir string) (State, error) {
	data, err := os.ReadFile(filepath.Join(dir, StateFileName))
	if err != nil {
		return State{}, fmt.Errorf("reading the store status: %w", err)
	}
	var j stateJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return State{}, fmt.Errorf("%s: %w", StateFileName, err)
	}
	st := State{Store: j.Store, State: j.State, Error: j.Error, Generation: j.Generation}
	st.Since, _ = time.Parse(time.RFC3339, j.Since)
	return st, nil
}
