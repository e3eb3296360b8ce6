package boot

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
)

// AuthVariables are the variables that may carry a whole auth.json, in order
// of precedence: the first one set (non-empty) wins.
func AuthVariables() []string { return []string{"CODEX_AUTH_JSON", "CODEX_CHATGPT_AUTH_JSON"} }

// SeedAction says what SeedAuth did with auth.json.
type SeedAction string

const (
	SeedNone     SeedAction = "none"     // no variable: auth.json is whatever is on the volume
	SeedWritten  SeedAction = "written"  // no usable auth.json (missing, empty, unreadable, no credential)
	SeedKept     SeedAction = "kept"     // same account, and the file is at least as fresh: the variable is a spent copy
	SeedReplaced SeedAction = "replaced" // same account, the variable is fresher
	SeedAccount  SeedAction = "account"  // another account: the variable wins
)

// SeedResult says what happened and why, without any value.
type SeedResult struct {
	Action   SeedAction
	Variable string // which variable was used, "" for SeedNone
	Reason   string
}

// Materialised reports whether auth.json now holds the variable's credential
// or a rotated successor of it, so the variable can leave the child's
// environment.
func (r SeedResult) Materialised() bool { return r.Action != SeedNone && r.Action != "" }

// ErrInvalidCredential is wrapped when the variable does not hold a usable
// credential; auth.json is then left untouched.
var ErrInvalidCredential = errors.New("not a valid credential")

// SeedOptions are SeedAuth's inputs.
type SeedOptions struct {
	Home        string   // CODEX_HOME
	Owner       *User    // owner of a written auth.json; nil: the current user
	Environ     []string // where the variables are looked up
	Logger      hclog.Logger
	LockTimeout time.Duration
	// DeferDirSync is authwatch.Home.DeferDirSync for the seeding commit:
	// nil fsyncs the directory before SeedAuth returns.
	DeferDirSync func(sync func() error)
}
