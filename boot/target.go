package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Target is who boot prepares CODEX_HOME for, and where it is.
type Target struct {
	// User is the user to drop to; nil keeps the current one.
	User *User
	// CodexHome is the absolute CODEX_HOME.
	CodexHome string
}

// ResolveTarget looks up cfg.User, checks that this process can become that
// user, and decides CODEX_HOME, writing nothing: an unknown user, a drop that
// needs root, or a default CODEX_HOME under a home that does not exist (such
// as nobody's /nonexistent) or under / stops the launcher before anything is
// created. An explicit CodexHome is taken as given; boot creates it.
func ResolveTarget(cfg Config) (Target, error) {
	var t Target
	if cfg.User != "" {
		u, err := cfg.Accounts.Lookup(cfg.User)
		if err != nil {
			return t, &Error{"user", err}
		}
		if err := CanDrop(u); err != nil {
			return t, &Error{"drop", err}
		}
		t.User = u
	}
	home := cfg.CodexHome
	if home == "" {
		base, whose := "", "the current user"
		switch {
		case t.User != nil:
			base, whose = t.User.Home, "user "+t.User.String()
		default:
			base = CurrentHome(cfg.Environ)
		}
		if err := usableHome(base); err != nil {
			return t, &Error{"codex-home", fmt.Errorf("CODEX_HOME is not set, and the home directory of %s cannot hold it: %w; set CODEX_HOME (--codex-home)", whose, err)}
		}
		home = filepath.Join(base, ".codex")
	}
	abs, err := filepath.Abs(home)
	if err != nil {
		return t, &Error{"codex-home", fmt.Errorf("CODEX_HOME %s: %w", home, err)}
	}
	t.CodexHome = abs
	return t, nil
}

// usableHome accepts a home directory that exists and is not the root
// directory, under which CODEX_HOME may default.
func usableHome(dir string) error {
	switch {
	case dir == "":
		return errors.New("there is none")
	case filepath.Clean(dir) == "/":
		return errors.New("it is /")
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// CurrentHome is the current user's home directory, under which CODEX_HOME
// defaults: HOME from environ when set, else the account's ("" when neither
// is known).
func CurrentHome(environ []string) string {
	if h, ok := LookupEnv(environ, "HOME"); ok && h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}
