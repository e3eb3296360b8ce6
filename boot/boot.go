package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/authwatch"
)

// Config is what boot needs from the launcher's configuration.
type Config struct {
	// CodexHome is CODEX_HOME as configured by flag or variable. Empty: the
	// target user's home + "/.codex" (see ResolveTarget).
	CodexHome string
	// User is NAME|UID[:GROUP|GID] to drop to; empty keeps the current user.
	User string
	// Environ is the launcher's environment, the env directory already
	// applied.
	Environ []string
	// Command is the child's argv, for the boot log only.
	Command []string
	Logger  hclog.Logger
	// Accounts locates /etc/passwd and /etc/group; zero is /etc.
	Accounts Accounts
	// LockTimeout bounds the wait for the CLI's auth.json.lock when seeding;
	// zero is authwatch's default.
	LockTimeout time.Duration
}

// Result is what the launcher needs after boot.
type Result struct {
	// Env is the child's environment: Environ with
	// HOME set to the target user's home, CODEX_HOME set to the resolved
	// directory, and CODEX_AUTH_JSON / CODEX_CHATGPT_AUTH_JSON removed once
	// auth.json holds (or already held) their credential. Use it for the child
	// and for any configuration read after boot (the env directory may carry
	// launcher variables too).
	Env []string
	// CodexHome is the resolved directory the watchdog must use.
	CodexHome string
	// User is the user the process now runs as (nil when Config.User was empty).
	User  *User
	Seed  SeedResult
	Store StoreAction

	syncs *pendingSyncs
}

// WaitDurable waits until what boot wrote is durable: the directory fsync of
// a seeded auth.json runs beside the child's start (see
// authwatch.Home.DeferDirSync). Call it once the child runs, and before
// exiting on any path; it may be called more than once.
func (r *Result) WaitDurable() error {
	if r == nil || r.syncs == nil {
		return nil
	}
	return r.syncs.wait()
}

// Error is a boot failure; the launcher exits 125 on it. Step names what was
// being done ("env-dir", "user", "codex-home", "drop", "seed").
type Error struct {
	Step string
	Err  error
}

func (e *Error) Error() string { return "boot: " + e.Step + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Run does the boot for target (ResolveTarget) in the only safe order: log
// the context, prepare CODEX_HOME as root (create, re-own), drop to the user,
// and only then seed auth.json and config.toml, so that every file written
// from here on (by boot, the prime and the watchdog) is the user's and no root
// process writes into a directory the user controls.
//
// It stops between steps when ctx is done (a SIGTERM during boot), having
// left nothing half-written: each write is atomic.
func Run(ctx context.Context, cfg Config, target Target) (*Result, error) {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("boot")
	env := append([]string(nil), cfg.Environ...)
	res := &Result{syncs: &pendingSyncs{}, User: target.User}

	LogContext(log, target.User, cfg.Command, env)
	if err := ctx.Err(); err != nil {
		return nil, &Error{"user", err}
	}

	home := target.CodexHome
	res.CodexHome = home
	if err := PrepareHome(home, target.User, log); err != nil {
		return nil, &Error{"codex-home", err}
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{"codex-home", err}
	}

	if target := target.User; target != nil {
		if SameUserOtherGroup(target) {
			log.Warn("already running as the target user, but in another group that cannot be changed without root; keeping it",
				"user", target.String(), "gid", os.Getegid())
		}
		if err := DropPrivileges(target); err != nil {
			return nil, &Error{"drop", err}
		}
		env = SetEnv(env, "HOME", target.Home)
		log.Debug("running as the target user", "user", target.String())
	}
	// After the drop: a parent directory that only root may enter makes
	// every later write fail with a bare EACCES; say what is wrong instead.
	if err := unix.Access(home, unix.W_OK|unix.X_OK); err != nil {
		return nil, &Error{"codex-home", fmt.Errorf("CODEX_HOME %s is not writable by uid %d (check it and the permissions of its parent directories): %w",
			home, os.Geteuid(), err)}
	}
	env = SetEnv(env, "CODEX_HOME", home)

	seed, err := SeedAuth(ctx, SeedOptions{
		Home: home, Environ: env, Logger: log, LockTimeout: cfg.LockTimeout,
		DeferDirSync: res.syncs.start,
	})
	if err != nil {
		res.syncs.wait() // nothing is left running behind an error
		return nil, &Error{"seed", err}
	}
	res.Seed = seed
	if seed.Materialised() {
		env = UnsetEnv(env, AuthVariables()...)
	}

	// Best effort: without the key the CLI's default store is the file
	// anyway, so a config.toml that cannot be read as TOML, or cannot be
	// written (a read-only mount), is reported, not fatal.
	store, err := EnsureFileStore(home, nil, log)
	if err != nil {
		if errors.Is(err, ErrConfigSyntax) {
			log.Warn("config.toml could not be read as TOML; left alone (the CLI will say more)", "error", err)
		} else {
			log.Warn("could not make sure config.toml selects the file credential store; left alone", "error", err)
		}
	}
	res.Store = store
	res.Env = env
	if !seed.Materialised() { // else auth.json holds the variable's credential
		warnNoCredential(log, home, env)
	}
	log.Debug("boot done", "codex_home", home, "user", target.User.String(), "seed", string(seed.Action), "config_store", string(store))
	return res, nil
}

// warnNoCredential says so when the child will find no credential of any kind.
func warnNoCredential(log hclog.Logger, home string, env []string) {
	if st, err := (authwatch.Home{Dir: home}).Lstat(authwatch.AuthFileName); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size > 0 {
		return
	}
	for _, name := range apiKeyVariables() {
		if v, ok := LookupEnv(env, name); ok && v != "" {
			return
		}
	}
	log.Warn("no credential of any kind: no auth.json and no API key variable", "codex_home", home)
}
