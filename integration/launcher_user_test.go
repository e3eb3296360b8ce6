package integration

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// nobody is the unprivileged user of the --user tests: present in every
// Debian passwd, and never the owner of anything the test creates as root.
const nobodyID = 65534

func TestLauncherUserOwnsEverything(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{AccessTTL: 24 * time.Hour})
	// A volume as an older, root-run start.sh left it: root-owned auth.json,
	// lock files, sessions and config.
	old := l.Mock.IssueWithExpiry("acct-user", time.Now().Add(time.Hour))
	l.WriteAuth(testenv.AuthJSON(old, time.Now().Add(-time.Hour)))
	for _, f := range []string{"auth.lock", "auth.json.lock", "config.toml", "sessions/2026/rollout.jsonl"} {
		p := filepath.Join(l.CodexHome, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.Args = []string{"--user", "65534:65534"}
	l.Child = []string{l.Script("child.sh", `cp "$CODEX_HOME/auth.json" "$OUT/first.json" || exit 90
printf '%s %s %s' "$(id -u)" "$(id -g)" "$HOME" > "$OUT/ids"
echo ready > "$OUT/ready"
while [ ! -f "$OUT/go" ]; do sleep 0.05; done
exit 0
`)}
	l.Start()
	l.WaitFile("ready", 20*time.Second)

	pid := l.LauncherPID()
	if uid, gid, err := procIDs(pid); err != nil || uid != nobodyID || gid != nobodyID {
		t.Errorf("codex-launch runs as %d:%d (%v), want %d:%d after the drop", uid, gid, err, nobodyID, nobodyID)
	}
	for _, child := range testenv.ChildrenOf(pid) {
		if uid, gid, err := procIDs(child); err == nil && (uid != nobodyID || gid != nobodyID) {
			t.Errorf("child %d runs as %d:%d", child, uid, gid)
		}
	}
	l.Touch("go")
	if code := l.Wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d; output:\n%s", code, l.Output.String())
	}
	if ids := l.OutFile("ids"); ids != "65534 65534 /nonexistent" {
		t.Errorf("child ids and HOME = %q, want nobody's", ids)
	}
	latest, _ := l.Mock.Latest("acct-user")
	if latest.Generation != 1 || !testenv.Holds([]byte(l.OutFile("first.json")), latest) {
		t.Error("the prime did not refresh as the target user before the child")
	}
	// Every file in CODEX_HOME, including what the prime and the watchdog
	// wrote (auth.json, locks, status file), belongs to the user.
	var seen []string
	filepath.WalkDir(l.CodexHome, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != nobodyID || st.Gid != nobodyID {
			t.Errorf("%s belongs to %d:%d", p, st.Uid, st.Gid)
		}
		seen = append(seen, strings.TrimPrefix(p, l.CodexHome))
		return nil
	})
	for _, want := range []string{"/auth.json", "/auth.lock", "/auth.json.lock", "/auth_refresh_status.json", "/config.toml", "/sessions"} {
		found := false
		for _, s := range seen {
			found = found || s == want
		}
		if !found {
			t.Errorf("%s missing from CODEX_HOME (have %v)", want, seen)
		}
	}
}

func TestLauncherUnknownUser(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	l.Args = []string{"--user", "no-such-user-xyz"}
	l.Child = []string{l.Script("child.sh", `echo started > "$OUT/started"`)}
	if code := l.Run(20 * time.Second); code != 125 {
		t.Errorf("exit %d, want 125; output:\n%s", code, l.Output.String())
	}
	if !strings.Contains(l.Output.String(), "no-such-user-xyz") {
		t.Errorf("the error does not name the user:\n%s", l.Output.String())
	}
	if l.OutFile("started") != "" {
		t.Error("the child ran")
	}
}

// TestLauncherUserWithoutRoot: asking for another user without the privilege
// to become it is a clear exit 125, never a run as the wrong user; with no
// CODEX_HOME yet, nothing is created and no warning about re-owning comes
// before the real error.
func TestLauncherUserWithoutRoot(t *testing.T) {
	for _, c := range []struct {
		name, user string
		homeReady  bool
	}{
		{"CODEX_HOME the agent's", "0:0", true},
		{"no CODEX_HOME yet", "root", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLaunch(t, tokenmock.Options{})
			if c.homeReady {
				if err := os.MkdirAll(filepath.Join(l.CodexHome, "sessions"), 0o700); err != nil {
					t.Fatal(err)
				}
				for _, p := range []string{l.CodexHome, filepath.Join(l.CodexHome, "sessions")} {
					if err := os.Chown(p, nobodyID, nobodyID); err != nil {
						t.Fatal(err)
					}
				}
			}
			cmd := exec.Command(l.Bin, "--user", c.user, "--", l.Script("child.sh", `echo started > "$OUT/started"`))
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID}}
			l.StartCommand(cmd)
			if code := l.Wait(20 * time.Second); code != 125 {
				t.Fatalf("exit %d, want 125; output:\n%s", code, l.Output.String())
			}
			out := l.Output.String()
			if !strings.Contains(out, "not running as root") {
				t.Errorf("the error does not say why:\n%s", out)
			}
			if strings.Contains(out, "re-own") {
				t.Errorf("a warning about re-owning came before the real error:\n%s", out)
			}
			if l.OutFile("started") != "" {
				t.Error("the child ran")
			}
			if _, err := os.Stat(l.CodexHome); !c.homeReady && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("CODEX_HOME was created before the switch failed: %v", err)
			}
		})
	}
}

// TestLauncherAlreadyTheUserInGroupZero: Kubernetes' runAsUser without
// runAsGroup starts codex-launch as the user but in group 0; the image's
// CODEX_LAUNCH_USER names that user. It runs, keeps the group, and says so.
func TestLauncherAlreadyTheUserInGroupZero(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	if err := os.MkdirAll(l.CodexHome, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(l.CodexHome, nobodyID, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(builtLauncher(t), "--user", "65534:65534", "--", l.Script("child.sh", `id -u > "$OUT/uid"`))
	cmd.Env = l.Environ()
	cmd.Dir = l.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: 0}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v; output:\n%s", err, out)
	}
	if uid := strings.TrimSpace(l.OutFile("uid")); uid != "65534" {
		t.Errorf("child uid %q", uid)
	}
	if !strings.Contains(string(out), "another group") {
		t.Errorf("no warning about the group:\n%s", out)
	}
}

// TestLauncherUserCannotReachCodexHome: a CODEX_HOME below a directory only
// root may enter is a clear exit 125 after the drop, not a bare EACCES later.
func TestLauncherUserCannotReachCodexHome(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	private := filepath.Join(l.Dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	l.CodexHome = filepath.Join(private, "codex")
	l.Args = []string{"--user", "65534:65534"}
	l.Child = []string{l.Script("child.sh", `echo started > "$OUT/started"`)}
	if code := l.Run(20 * time.Second); code != 125 {
		t.Errorf("exit %d, want 125; output:\n%s", code, l.Output.String())
	}
	if !strings.Contains(l.Output.String(), "parent directories") {
		t.Errorf("the error does not say what is wrong:\n%s", l.Output.String())
	}
	if l.OutFile("started") != "" {
		t.Error("the child ran")
	}
}
