package integration

// The attacks of docs/security.md: codex-launch runs as root (PID 1 of a
// fresh PID namespace, or a subcommand as `docker exec` runs it) on a
// CODEX_HOME that belongs to an unprivileged user (nobody), who has planted
// something there. Every test checks that a root-only file outside CODEX_HOME
// keeps its owner, mode and bytes and that nothing was created beside it,
// that the process exits with the code the table says, that its peak RSS
// (Maxrss of the namespace's processes, reaped by unshare) stays under
// securityMaxRSS, and that no file in CODEX_HOME is left root's.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// securityMaxRSS is the peak RSS (KiB) no attack may push a process past.
const securityMaxRSS = 64 << 10

// securityHang is how long a run may take before it counts as hung.
const securityHang = 30 * time.Second

var victimBytes = []byte("root's own file: nobody may own, change or redeem it\n")

// attack is one CODEX_HOME of an unprivileged agent beside a root-only
// directory that must stay as it is.
type attack struct {
	*launch
	uid, gid int
	agent    string // the agent's home (its own, 0755)
	outside  string // root-only (0700) directory outside CODEX_HOME
	victim   string // root's file in it (0600)
}

func newAttack(t *testing.T) *attack {
	t.Helper()
	l := newLaunch(t, tokenmock.Options{})
	u, err := user.Lookup("nobody")
	if err != nil {
		testenv.Unavailable(t, "no user nobody: "+err.Error())
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	a := &attack{launch: l, uid: uid, gid: gid,
		agent: filepath.Join(l.Dir, "agent"), outside: filepath.Join(l.Dir, "rootonly")}
	a.CodexHome = filepath.Join(a.agent, ".codex")
	a.victim = filepath.Join(a.outside, "victim")
	for _, d := range []string{a.agent, a.CodexHome} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		a.give(d)
	}
	if err := os.Mkdir(a.outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.victim, victimBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

// give hands path (not a link's target) to the agent.
func (a *attack) give(path string) {
	a.T.Helper()
	if err := os.Lchown(path, a.uid, a.gid); err != nil {
		a.T.Fatal(err)
	}
}

// plant makes name in CODEX_HOME a symbolic link to target, the agent's.
func (a *attack) plant(name, target string) {
	a.T.Helper()
	p := filepath.Join(a.CodexHome, name)
	os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		a.T.Fatal(err)
	}
	a.give(p)
}

// fifo makes name in CODEX_HOME a FIFO, the agent's.
func (a *attack) fifo(name string) {
	a.T.Helper()
	p := filepath.Join(a.CodexHome, name)
	os.Remove(p)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		a.T.Fatal(err)
	}
	a.give(p)
}

// file writes name in CODEX_HOME, the agent's.
func (a *attack) file(name string, data []byte) {
	a.T.Helper()
	p := filepath.Join(a.CodexHome, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		a.T.Fatal(err)
	}
	a.give(p)
}

// attackRun is one finished run.
type attackRun struct {
	code int
	out  string
	rss  int64 // KiB
}

var (
	maxrssOnce sync.Once
	maxrssPath string
	maxrssErr  error
)

// maxrssHelper builds testdata/maxrss once.
func maxrssHelper(t *testing.T) string {
	t.Helper()
	maxrssOnce.Do(func() { maxrssPath, maxrssErr = testenv.Build(scratchDir, "./integration/testdata/maxrss", "maxrss") })
	if maxrssErr != nil {
		t.Fatalf("building the maxrss helper: %v", maxrssErr)
	}
	return maxrssPath
}

// run runs codex-launch ARGS as PID 1 of a fresh PID namespace, as root,
// under the maxrss helper; during, when set, is called while it runs.
func (a *attack) run(t *testing.T, during func(cmd *exec.Cmd, out *testenv.Buffer), args ...string) attackRun {
	t.Helper()
	rssFile := filepath.Join(t.TempDir(), "maxrss")
	argv := append([]string{rssFile, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child", builtLauncher(t)}, args...)
	cmd := exec.Command(maxrssHelper(t), argv...)
	cmd.Env = a.Environ()
	cmd.Dir = a.Dir
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if during != nil {
		during(cmd, &out)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(securityHang):
		pid1KillTree(cmd.Process.Pid)
		<-done
		t.Fatalf("codex-launch %v hung (killed after %s); output:\n%s", args, securityHang, out.String())
	}
	r := attackRun{out: out.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	b, rerr := os.ReadFile(rssFile)
	if r.rss, err = strconv.ParseInt(string(b), 10, 64); rerr != nil || err != nil {
		t.Fatalf("no peak RSS from the maxrss helper (%v %v); output:\n%s", rerr, err, r.out)
	}
	return r
}

// launcherOf is the PID of codex-launch (PID 1 of the namespace) under the
// maxrss helper's unshare.
func launcherOf(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	var pid int
	pid1WaitFor(10*time.Second, func() bool {
		for _, u := range testenv.ChildrenOf(cmd.Process.Pid) {
			for _, k := range testenv.ChildrenOf(u) {
				// The fork of unshare until it has exec'd the launcher.
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", k)); strings.TrimSpace(string(comm)) == "codex-launch" {
					pid = k
					return true
				}
			}
		}
		return false
	})
	if pid == 0 {
		t.Fatal("codex-launch did not start")
	}
	return pid
}

// check asserts the run's exit code, its peak RSS, the untouched outside
// and that CODEX_HOME holds no file of root's.
func (a *attack) check(t *testing.T, r attackRun, wantCode int, what string) {
	t.Helper()
	if r.code != wantCode {
		t.Errorf("%s: exit %d, want %d; output:\n%s", what, r.code, wantCode, r.out)
	}
	if r.rss > securityMaxRSS {
		t.Errorf("%s: peak RSS %d KiB, more than %d KiB", what, r.rss, securityMaxRSS)
	}
	t.Logf("%s: exit %d, peak RSS %d KiB", what, r.code, r.rss)
	a.checkOutside(t)
	a.checkNoRootFiles(t, what)
	if leaks := a.Mock.Leaks([]byte(r.out)); len(leaks) > 0 {
		t.Errorf("%s: output holds tokens: %v", what, leaks)
	}
}

func (a *attack) checkOutside(t *testing.T) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(a.outside, &st); err != nil || st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o700 {
		t.Errorf("outside directory: uid %d gid %d mode %o (%v), want root's 0700", st.Uid, st.Gid, st.Mode&0o7777, err)
	}
	if err := unix.Lstat(a.victim, &st); err != nil || st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o600 {
		t.Errorf("outside file: uid %d gid %d mode %o (%v), want root's 0600", st.Uid, st.Gid, st.Mode&0o7777, err)
	}
	if b, _ := os.ReadFile(a.victim); !bytes.Equal(b, victimBytes) {
		t.Errorf("outside file's bytes changed: %.80q", b)
	}
	entries, _ := os.ReadDir(a.outside)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := a.outsideNames(); strings.Join(names, ",") != want {
		t.Errorf("outside directory holds %v, want %s", names, want)
	}
}

// outsideNames is what the outside directory must hold (sorted, commas).
func (a *attack) outsideNames() string { return "victim" }

func (a *attack) checkNoRootFiles(t *testing.T, what string) {
	t.Helper()
	filepath.Walk(a.CodexHome, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
			t.Errorf("%s: %s is root's in the agent's CODEX_HOME", what, p)
		}
		return nil
	})
}

// dueCredential is a login whose access token has expired: any refresh
// decides to redeem it.
func (a *attack) dueCredential(account string) (tokenmock.Credential, []byte) {
	c := a.Mock.IssueWithExpiry(account, time.Now().Add(-time.Minute))
	return c, testenv.AuthJSON(c, time.Now().Add(-24*time.Hour))
}

// TestAttackCodexHomeLink: CODEX_HOME is the agent's link to a root-only
// tree. Boot refuses it: nothing there is re-owned.
func TestAttackCodexHomeLink(t *testing.T) {
	a := newAttack(t)
	os.Remove(a.CodexHome)
	if err := os.Symlink(a.outside, a.CodexHome); err != nil {
		t.Fatal(err)
	}
	a.give(a.CodexHome)
	r := a.run(t, nil, "--user", "nobody", "--", "/bin/true")
	if !strings.Contains(r.out, "symbolic link") || !strings.Contains(r.out, a.CodexHome) {
		t.Errorf("the refusal does not say why:\n%s", r.out)
	}
	a.check(t, r, 125, "launcher") // a boot error
}

// TestAttackLockLinks: the CLI's lock files are the agent's links to files
// outside. root `refresh --once` never follows them.
func TestAttackLockLinks(t *testing.T) {
	t.Run("auth.lock to a root file", func(t *testing.T) {
		a := newAttack(t)
		_, data := a.dueCredential("acct-lock")
		a.file("auth.json", data)
		a.plant("auth.lock", a.victim)
		r := a.run(t, nil, "refresh", "--once")
		a.check(t, r, 2, "refresh --once")
		if a.Mock.Posts() != 0 {
			t.Errorf("a refresh token was spent without auth.lock")
		}
	})
	t.Run("auth.json.lock dangling into a root directory", func(t *testing.T) {
		a := newAttack(t)
		_, data := a.dueCredential("acct-lock2")
		a.file("auth.json", data)
		a.plant("auth.json.lock", filepath.Join(a.outside, "created"))
		r := a.run(t, nil, "refresh", "--once")
		// The refresh is kept: auth.lock was ours, and a lock file that
		// is a link is no writer.
		a.check(t, r, 0, "refresh --once")
		if a.Mock.Posts() != 1 {
			t.Errorf("%d refreshes, want 1", a.Mock.Posts())
		}
	})
	t.Run("auth.lock dangling into a root directory", func(t *testing.T) {
		a := newAttack(t)
		_, data := a.dueCredential("acct-lock3")
		a.file("auth.json", data)
		a.plant("auth.lock", filepath.Join(a.outside, "created"))
		r := a.run(t, nil, "refresh", "--once")
		a.check(t, r, 2, "refresh --once")
	})
}

// TestAttackAuthLink: auth.json is the agent's link to another user's
// credential. It is never read, never redeemed.
func TestAttackAuthLink(t *testing.T) {
	a := newAttack(t)
	_, data := a.dueCredential("acct-victim")
	if err := os.WriteFile(a.victim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	victimBytes := data
	a.plant("auth.json", a.victim)
	for _, cmd := range [][]string{{"refresh", "--once"}, {"health"}} {
		r := a.run(t, nil, cmd...)
		want := map[string]int{"refresh": 2, "health": 1}[cmd[0]]
		if r.code != want {
			t.Errorf("%v: exit %d, want %d:\n%s", cmd, r.code, want, r.out)
		}
		if r.rss > securityMaxRSS {
			t.Errorf("%v: peak RSS %d KiB", cmd, r.rss)
		}
	}
	if a.Mock.Posts() != 0 {
		t.Errorf("the other user's refresh token was redeemed")
	}
	if b, _ := os.ReadFile(a.victim); !bytes.Equal(b, victimBytes) {
		t.Errorf("the other user's credential changed")
	}
	var st unix.Stat_t
	if unix.Lstat(a.victim, &st); st.Uid != 0 || st.Mode&0o7777 != 0o600 {
		t.Errorf("the other user's credential: uid %d mode %o", st.Uid, st.Mode&0o7777)
	}
	a.checkNoRootFiles(t, "refresh --once")
}

// TestAttackHugeFiles: files far past any real size are not read.
func TestAttackHugeFiles(t *testing.T) {
	big := func(a *attack, name string, size int64) {
		p := filepath.Join(a.CodexHome, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(size) // sparse: reads as zeros, costs no disk
		f.Close()
		a.give(p)
	}
	t.Run("200 MB auth.json", func(t *testing.T) {
		a := newAttack(t)
		big(a, "auth.json", 200<<20)
		r := a.run(t, nil, "refresh", "--once")
		a.check(t, r, 2, "refresh --once")
		r = a.run(t, nil, "health")
		a.check(t, r, 1, "health")
		if !strings.Contains(r.out, "too large") {
			t.Errorf("health does not say the file is too large: %q", r.out)
		}
		r = a.run(t, nil, "--user", "nobody", "--", "/bin/true")
		a.check(t, r, 0, "launcher")
	})
	t.Run("50 MB JWT", func(t *testing.T) {
		a := newAttack(t)
		c, _ := a.dueCredential("acct-jwt")
		c.IDToken = "a." + strings.Repeat("A", 50<<20) + ".c"
		a.file("auth.json", testenv.AuthJSON(c, time.Now().Add(-24*time.Hour)))
		r := a.run(t, nil, "refresh", "--once")
		a.check(t, r, 2, "refresh --once")
		if a.Mock.Posts() != 0 {
			t.Errorf("refreshed a credential it could not read")
		}
	})
	t.Run("status files", func(t *testing.T) {
		a := newAttack(t)
		fresh := a.Mock.IssueWithExpiry("acct-st", time.Now().Add(240*time.Hour))
		a.file("auth.json", testenv.AuthJSON(fresh, time.Now()))
		big(a, "auth_refresh_status.json", 200<<20)
		big(a, "codex_launch_store_status.json", 200<<20)
		a.Env["CODEX_LAUNCH_CREDENTIAL_STORE"] = "postgres://agent@127.0.0.1:1/none"
		r := a.run(t, nil, "health")
		a.check(t, r, 1, "health")
		if strings.Count(r.out, "too large") != 2 {
			t.Errorf("health does not name both files too large: %q", r.out)
		}
		r = a.run(t, nil, "status")
		a.check(t, r, 0, "status")
	})
	t.Run("auth.json becomes /dev/zero while the launcher runs", func(t *testing.T) {
		a := newAttack(t)
		fresh := a.Mock.IssueWithExpiry("acct-z", time.Now().Add(240*time.Hour))
		a.file("auth.json", testenv.AuthJSON(fresh, time.Now()))
		child := a.Script("swap.sh", `cd "$CODEX_HOME" && rm -f auth.json && ln -s /dev/zero auth.json && sleep 3`)
		r := a.run(t, nil, "--user", "nobody", "--poll-interval", "100ms", "--", child)
		a.check(t, r, 0, "launcher")
	})
}

// TestAttackFIFOs: a FIFO where a file is read blocks nothing.
func TestAttackFIFOs(t *testing.T) {
	for _, name := range []string{"auth.json", "auth_refresh_status.json", "codex_launch_store_status.json"} {
		t.Run(name, func(t *testing.T) {
			a := newAttack(t)
			if name != "auth.json" {
				fresh := a.Mock.IssueWithExpiry("acct-f", time.Now().Add(240*time.Hour))
				a.file("auth.json", testenv.AuthJSON(fresh, time.Now()))
			}
			a.fifo(name)
			if name == "codex_launch_store_status.json" {
				// Read only with a shared store configured (never
				// reached: health and status do not connect).
				a.Env["CODEX_LAUNCH_CREDENTIAL_STORE"] = "postgres://agent@127.0.0.1:1/none"
			}
			r := a.run(t, nil, "health")
			a.check(t, r, 1, "health")
			if !strings.Contains(r.out, "FIFO") {
				t.Errorf("health does not name the FIFO: %q", r.out)
			}
			r = a.run(t, nil, "status")
			a.check(t, r, 0, "status")
			delete(a.Env, "CODEX_LAUNCH_CREDENTIAL_STORE")
			if name == "auth.json" {
				r = a.run(t, nil, "refresh", "--once")
				a.check(t, r, 2, "refresh --once")
			}
			r = a.run(t, nil, "--user", "nobody", "--", "/bin/true")
			a.check(t, r, 0, "launcher")
		})
	}
	t.Run("config.toml, and a stop during boot", func(t *testing.T) {
		a := newAttack(t)
		a.fifo("config.toml")
		r := a.run(t, nil, "--user", "nobody", "--", "/bin/true")
		a.check(t, r, 0, "launcher")
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(a.CodexHome, "config.toml"), &st); st.Mode&unix.S_IFMT != unix.S_IFIFO {
			t.Errorf("config.toml was replaced")
		}
		r = a.run(t, func(cmd *exec.Cmd, out *testenv.Buffer) {
			// Once boot has begun (its handlers are in place before it
			// logs): the old boot then blocked on the FIFO for good.
			pid := launcherOf(t, cmd)
			pid1WaitFor(10*time.Second, func() bool { return strings.Contains(out.String(), "boot:") })
			syscall.Kill(pid, syscall.SIGTERM)
		}, "--user", "nobody", "--", "/bin/sleep", "60")
		a.check(t, r, 143, "launcher stopped")
	})
	t.Run("auth.json becomes a FIFO while the launcher runs", func(t *testing.T) {
		a := newAttack(t)
		fresh := a.Mock.IssueWithExpiry("acct-ff", time.Now().Add(240*time.Hour))
		a.file("auth.json", testenv.AuthJSON(fresh, time.Now()))
		child := a.Script("swap.sh", `cd "$CODEX_HOME" && rm -f auth.json && mkfifo auth.json && sleep 1`)
		r := a.run(t, nil, "--user", "nobody", "--poll-interval", "100ms", "--", child)
		a.check(t, r, 0, "launcher")
	})
}

// TestAttackEnvDirSpecialFiles: the env directory warns for each entry it
// skips, naming its type.
func TestAttackEnvDirSpecialFiles(t *testing.T) {
	a := newAttack(t)
	env := filepath.Join(a.Dir, "env")
	if err := os.Mkdir(env, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(env, "FROM_FIFO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(env, "FROM_DEVICE"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(env, "PLAIN"), []byte("ok\n"), 0o644)
	a.Env["CODEX_LAUNCH_LOG_LEVEL"] = "warn"
	r := a.run(t, nil, "--env-dir", env, "--user", "nobody", "--", "/bin/true")
	a.check(t, r, 0, "launcher")
	for name, typ := range map[string]string{"FROM_FIFO": "FIFO", "FROM_DEVICE": "character device"} {
		found := false
		for _, line := range strings.Split(r.out, "\n") {
			if strings.Contains(line, name) && strings.Contains(line, typ) && strings.Contains(line, "WARN") {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning naming %s as a %s:\n%s", name, typ, r.out)
		}
	}
}
