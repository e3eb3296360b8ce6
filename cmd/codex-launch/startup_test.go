package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/boot"
)

// The env directory is read once, before the configuration is resolved, for
// every command: status and health judge with the launcher's settings, and a
// CODEX_HOME set there is the one the launcher uses.
func TestEnvDirReachesEveryCommand(t *testing.T) {
	r := newRig(t)
	r.writeCred(10 * time.Hour)
	envDir := filepath.Join(r.dir, "secrets.d")
	if err := os.Mkdir(envDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envDir, "CODEX_HOME"), []byte(r.home+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The environment names another home; the directory's value wins.
	env := append(r.env("CODEX_LAUNCH_ENV_DIR="+envDir), "CODEX_HOME="+filepath.Join(r.dir, "elsewhere"))
	res := r.run(env, "--", "true")
	if res.code != 0 {
		t.Fatalf("launcher: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(r.home, "config.toml")); err != nil {
		t.Errorf("the launcher did not use the env directory's CODEX_HOME: %v\n%s", err, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "elsewhere")); err == nil {
		t.Error("the launcher created the environment's CODEX_HOME, which the env directory overrides")
	}
	// status names the CODEX_HOME it read; health is 0 only for the
	// directory's home, which holds the fresh credential (the environment's
	// holds nothing and would be no_credential, exit 1).
	if res := r.run(env, "status"); res.code != 0 || !strings.Contains(res.stdout, "CODEX_HOME       "+r.home+"\n") {
		t.Errorf("status: exit %d, does not read the env directory's CODEX_HOME:\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := r.run(env, "health"); res.code != 0 {
		t.Errorf("health: exit %d, does not judge the env directory's CODEX_HOME:\n%s%s", res.code, res.stdout, res.stderr)
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
			home := filepath.Join(r.dir, "home")
			env := r.env("HOME=" + r.dir)
			env = append(env[:0:0], env...)
			for i, kv := range env {
				if strings.HasPrefix(kv, "CODEX_HOME=") {
					env[i] = "CODEX_HOME=" + home
				}
			}
			res := r.run(env, c.command)
			if res.code != exitNotFound {
				t.Errorf("exit %d, want %d\n%s", res.code, exitNotFound, res.stderr)
			}
			if c.hint != "" && !strings.Contains(res.stderr, c.hint) {
				t.Errorf("no hint %q:\n%s", c.hint, res.stderr)
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
	if os.Geteuid() != 0 {
		t.Skip("needs root to name another --user") // CI runs as root
	}
	if _, err := os.Stat("/.codex"); err == nil {
		t.Skip("/.codex exists on this machine; the test cannot tell whether it created it")
	}
	r := newRig(t)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.dir}
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
		res := r.run(env, "--user", user, "--", "true")
		if res.code != exitLaunch || !strings.Contains(res.stderr, "set CODEX_HOME") {
			t.Errorf("--user %s: exit %d, want %d and a hint to set CODEX_HOME\n%s", user, res.code, exitLaunch, res.stderr)
		}
	}
	if _, err := os.Stat("/.codex"); err == nil {
		os.RemoveAll("/.codex")
		t.Error("/.codex was created for a user without a home")
	}
}

// Without root, --user naming someone else fails before anything is written.
func TestUserSwitchWithoutRootWritesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start the launcher as another uid") // CI runs as root
	}
	// Not t.TempDir: its parent is root's alone, and the uid must get in.
	dir, err := os.MkdirTemp("", "codex-launch-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "codex")
	// The test binary's own directory is root's alone: a copy the uid can run.
	bin := filepath.Join(dir, "codex-launch")
	data, err := os.ReadFile(launcherBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--user", "root", "--codex-home", home, "--", "true")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitLaunch || !strings.Contains(string(out), "root") {
		t.Errorf("exit %d, want %d naming the need for root\n%s", code, exitLaunch, out)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CODEX_HOME was created before the switch failed: %v", err)
	}
	if strings.Contains(string(out), "re-own") {
		t.Errorf("a warning about re-owning came before the real error:\n%s", out)
	}
}
