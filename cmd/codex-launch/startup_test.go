package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/boot"
	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// The env directory is read once, before the configuration is resolved, for
// every command: status and health judge with the launcher's settings, and a
// CODEX_HOME set there is the one the launcher uses.
func TestEnvDirReachesEveryCommand(t *testing.T) {
	r := newRig(t)
	r.WriteCred("acct-l", 10*time.Hour)
	envDir := filepath.Join(r.Dir, "secrets.d")
	if err := os.Mkdir(envDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envDir, "CODEX_HOME"), []byte(r.CodexHome+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The environment names another home; the directory's value wins.
	env := map[string]string{"CODEX_LAUNCH_ENV_DIR": envDir, "CODEX_HOME": filepath.Join(r.Dir, "elsewhere")}
	res := r.Command(env, "--", "true")
	if res.Code != 0 {
		t.Fatalf("launcher: exit %d\n%s", res.Code, res.Stderr)
	}
	if _, err := os.Stat(filepath.Join(r.CodexHome, "config.toml")); err != nil {
		t.Errorf("the launcher did not use the env directory's CODEX_HOME: %v\n%s", err, res.Stderr)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "elsewhere")); err == nil {
		t.Error("the launcher created the environment's CODEX_HOME, which the env directory overrides")
	}
	// status names the CODEX_HOME it read; health is 0 only for the
	// directory's home, which holds the fresh credential (the environment's
	// holds nothing and would be no_credential, exit 1).
	if res := r.Command(env, "status"); res.Code != 0 || !strings.Contains(res.Stdout, "CODEX_HOME       "+r.CodexHome+"\n") {
		t.Errorf("status: exit %d, does not read the env directory's CODEX_HOME:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	if res := r.Command(env, "health"); res.Code != 0 {
		t.Errorf("health: exit %d, does not judge the env directory's CODEX_HOME:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}

// A command that cannot run writes nothing: a mistyped subcommand gets a hint
// and exit 127 before any boot.
func TestCommandNotFoundWritesNothing(t *testing.T) {
	for _, c := range []struct{ command, hint string }{
		{"help", "codex-launch --help"},
		{"version", "codex-launch --version"},
		{"stauts", "codex-launch status"},
		{"no-such-program-here", ""},
	} {
		t.Run(c.command, func(t *testing.T) {
			r := newRig(t)
			home := filepath.Join(r.Dir, "home")
			env := map[string]string{"CODEX_HOME": home}
			res := r.Command(env, c.command)
			if res.Code != exitNotFound {
				t.Errorf("exit %d, want %d\n%s", res.Code, exitNotFound, res.Stderr)
			}
			if c.hint != "" && !strings.Contains(res.Stderr, c.hint) {
				t.Errorf("no hint %q:\n%s", c.hint, res.Stderr)
			}
			if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("CODEX_HOME was created for a command that cannot run: %v", err)
			}
		})
	}
}

// A target user whose home does not exist (nobody's /nonexistent, or / for a
// uid without a passwd entry) gives no default CODEX_HOME: exit 125, nothing
// created.
func TestUserWithoutHomeWritesNothing(t *testing.T) {
	testenv.RequireRoot(t) // to name another --user
	if _, err := os.Stat("/.codex"); err == nil {
		testenv.Unavailable(t, "/.codex exists on this machine; the test cannot tell whether it created it")
	}
	r := newRig(t)
	env := map[string]string{"CODEX_HOME": ""} // no CODEX_HOME: the user's home decides
	users := []string{"4711:4711"}
	if u, err := (boot.Accounts{}).Lookup("nobody"); err == nil && u.Home != "/" {
		if _, err := os.Stat(u.Home); errors.Is(err, os.ErrNotExist) {
			users = append(users, "nobody")
			defer func() {
				if _, err := os.Stat(u.Home); err == nil {
					t.Errorf("%s was created for nobody", u.Home)
					os.RemoveAll(u.Home)
				}
			}()
		}
	}
	for _, user := range users {
		res := r.Command(env, "--user", user, "--", "true")
		if res.Code != exitLaunch || !strings.Contains(res.Stderr, "set CODEX_HOME") {
			t.Errorf("--user %s: exit %d, want %d and a hint to set CODEX_HOME\n%s", user, res.Code, exitLaunch, res.Stderr)
		}
	}
	if _, err := os.Stat("/.codex"); err == nil {
		os.RemoveAll("/.codex")
		t.Error("/.codex was created for a user without a home")
	}
}

// Without CODEX_HOME, the subcommands default it under the HOME that the
// launcher uses: the env directory's when it sets one.
func TestEnvDirHomeReachesTheSubcommands(t *testing.T) {
	r := newRig(t)
	home := filepath.Join(r.Dir, "agent")
	r.CodexHome = filepath.Join(home, ".codex")
	r.WriteCred("acct-l", 10*time.Hour)
	envDir := filepath.Join(r.Dir, "secrets.d")
	if err := os.Mkdir(envDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envDir, "HOME"), []byte(home+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CODEX_HOME": "", "CODEX_LAUNCH_ENV_DIR": envDir}
	if res := r.Command(env, "status"); !strings.Contains(res.Stdout, "CODEX_HOME       "+r.CodexHome+"\n") {
		t.Errorf("status: exit %d, does not default CODEX_HOME under the env directory's HOME:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	if res := r.Command(env, "refresh", "--once"); res.Code != 1 {
		t.Errorf("refresh --once: exit %d, want 1 (nothing to do for the fresh credential under the env directory's HOME)\n%s", res.Code, res.Stderr)
	}
}
