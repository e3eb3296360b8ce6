package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// These tests run the built binary as an ordinary child process (not PID 1:
// the integration tests do that) to check the launcher's wiring: prime before
// the child, exit codes, stop during prime, --require-auth, the credential
// variables, and the subcommands.

var launcherBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "codex-launch-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	launcherBin, err = testenv.BuildLauncher(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newRig is the launcher harness for these tests: codex-launch as a plain
// child at the default log level, an empty CODEX_HOME, a 2 s grace and a
// short recheck window (a permanent answer is final sooner).
func newRig(t *testing.T) *testenv.Launch {
	t.Helper()
	l := testenv.NewLaunch(t, launcherBin, tokenmock.Options{AccessTTL: 10 * time.Hour}) // beyond the 4h margin: fresh
	if err := os.MkdirAll(l.CodexHome, 0o700); err != nil {
		t.Fatal(err)
	}
	l.Env["CODEX_LAUNCH_LOG_LEVEL"] = ""
	l.Env["CODEX_LAUNCH_STOP_TIMEOUT"] = "2s"
	l.Env["CODEX_LAUNCH_RECHECK_WINDOW"] = "200ms"
	return l
}

// holdsLatest reports whether CODEX_HOME/auth.json holds the first refresh
// of account's credential.
func holdsLatest(l *testenv.Launch, account string) bool {
	latest, _ := l.Mock.Latest(account)
	return latest.Generation == 1 && testenv.Holds(l.ReadAuth(), latest)
}

// A flag codex-launch cannot parse is its own failure, 125, before any child.
func TestBadFlagExits125(t *testing.T) {
	r := newRig(t)
	if res := r.Command(nil, "--stop-timeout", "forever", "--", "true"); res.Code != 125 {
		t.Errorf("exit %d, want 125\n%s", res.Code, res.Stderr)
	}
}

// A TERM while the prime waits (here for the CLI's auth.lock) ends
// codex-launch at once with 143, and no child ever starts.
func TestStopDuringPrimeIsPrompt(t *testing.T) {
	r := newRig(t)
	r.WriteCred("acct-l", time.Minute)
	before := r.ReadAuth()
	lock, err := os.OpenFile(filepath.Join(r.CodexHome, "auth.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	r.Env["CODEX_LAUNCH_LOCK_TIMEOUT"] = "30s"
	r.Env["CODEX_LAUNCH_LOG_LEVEL"] = "debug"
	r.Child = []string{"sh", "-c", `echo ran > "$OUT/child-ran"`}
	r.Start()
	r.WaitOutput(20*time.Second, "refresh: starting", "auth.lock")
	time.Sleep(100 * time.Millisecond) // inside the lock wait
	r.Signal(syscall.SIGTERM)
	if code := r.Wait(5 * time.Second); code != 128+15 {
		t.Errorf("exit %d after TERM during the prime, want 143\n%s", code, r.Output.String())
	}
	if r.OutFile("child-ran") != "" {
		t.Error("the child started although TERM came during the prime")
	}
	if !bytes.Equal(before, r.ReadAuth()) || r.Mock.Posts() != 0 {
		t.Errorf("auth.json changed or a POST was made (%d) although the refresh was abandoned", r.Mock.Posts())
	}
}

func TestTransientPrimeFailureStartsTheChild(t *testing.T) {
	r := newRig(t)
	r.WriteCred("acct-l", time.Minute)
	r.Mock.Script(tokenmock.Error(503, "unavailable"))
	res := r.Command(nil, "--", "sh", "-c", "exit 4")
	if res.Code != 4 {
		t.Errorf("exit %d, want the child's 4\n%s", res.Code, res.Stderr)
	}
	if !strings.Contains(res.Stderr, "[WARN]") || !strings.Contains(res.Stderr, "transient failure") {
		t.Errorf("no warning for the transient prime failure:\n%s", res.Stderr)
	}
}

// The child does not wait for a POST longer than --prime-timeout; the
// refresh finishes beside it and is committed. The endpoint answers only
// once the child has run, so the child provably started first.
func TestPrimeTimeoutStartsTheChild(t *testing.T) {
	r := newRig(t)
	r.WriteCred("acct-l", time.Minute)
	gate := r.Mock.Hold(1)
	defer gate.Release()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for r.OutFile("child-ran") == "" {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		gate.Release()
	}()
	res := r.Command(map[string]string{"CODEX_LAUNCH_PRIME_TIMEOUT": "1s"}, "--", "sh", "-c", `echo ran > "$OUT/child-ran"; sleep 0.2; exit 5`)
	if res.Code != 5 {
		t.Errorf("exit %d, want the child's 5\n%s", res.Code, res.Stderr)
	}
	if !strings.Contains(res.Stderr, "--prime-timeout") || !strings.Contains(res.Stderr, "[WARN]") {
		t.Errorf("no warning for the prime timeout:\n%s", res.Stderr)
	}
	if !holdsLatest(r, "acct-l") {
		t.Errorf("the refresh that went on beside the child was not committed:\n%s", res.Stderr)
	}
}

func TestCredentialVariableLeavesTheChildEnvironment(t *testing.T) {
	r := newRig(t)
	c := r.Mock.Issue("acct-l") // fresh: boot writes it, the prime keeps it
	blob := string(r.Mock.AuthJSON(c, time.Now()))
	res := r.Command(map[string]string{"CODEX_AUTH_JSON": blob, "CODEX_CHATGPT_AUTH_JSON": blob, "CODEX_LAUNCH_CREDENTIAL_KEYS": "k1:" + tokenmock.Sentinel},
		"--", "sh", "-c", `env > "$OUT/env.txt"`)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	dump := []byte(r.OutFile("env.txt"))
	if len(dump) == 0 {
		t.Fatal("the child wrote no env.txt")
	}
	for _, name := range secretVariables(optionTable()) {
		if bytes.Contains(dump, []byte(name+"=")) {
			t.Errorf("secret variable %s reached the child's environment", name)
		}
	}
	r.CheckNoLeak("the child's environment", dump)
	if !testenv.Holds(r.ReadAuth(), c) {
		t.Error("auth.json was not seeded from CODEX_AUTH_JSON")
	}
}

// refresh --once: nothing to do on an empty CODEX_HOME (1, the image's smoke
// check), a due credential refreshed (0), then nothing to do (1); health is
// then one "healthy" line and status answers in both forms. The failures
// (2, 3) and the unhealthy states are integration's TestLauncherHealth.
func TestRefreshOnceAndHealth(t *testing.T) {
	r := newRig(t)
	if res := r.Command(nil, "refresh", "--once"); res.Code != 1 {
		t.Errorf("refresh --once on an empty CODEX_HOME: exit %d, want 1\n%s", res.Code, res.Stderr)
	}
	r.WriteCred("acct-l", time.Minute)
	if res := r.Command(nil, "refresh", "--once"); res.Code != 0 {
		t.Errorf("refresh --once on a due credential: exit %d\n%s", res.Code, res.Stderr)
	}
	if res := r.Command(nil, "refresh", "--once"); res.Code != 1 {
		t.Errorf("second refresh --once: exit %d, want 1\n%s", res.Code, res.Stderr)
	}
	res := r.Command(nil, "health")
	if res.Code != 0 || !strings.HasPrefix(res.Stdout, "healthy: ") || strings.Count(res.Stdout, "\n") != 1 {
		t.Errorf("health: exit %d %q", res.Code, res.Stdout)
	}
	if res := r.Command(nil, "status"); res.Code != 0 || !strings.Contains(res.Stdout, "health") {
		t.Errorf("status: exit %d %q", res.Code, res.Stdout)
	}
	if res := r.Command(nil, "status", "--json"); res.Code != 0 || !strings.Contains(res.Stdout, `"health"`) {
		t.Errorf("status --json: exit %d %q", res.Code, res.Stdout)
	}
}

func TestVersionFromLinker(t *testing.T) {
	out := filepath.Join(t.TempDir(), "codex-launch")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7-test", "-o", out, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, b)
	}
	got, err := exec.Command(out, "--version").Output()
	if err != nil || !strings.HasPrefix(string(got), "codex-launch v9.8.7-test (") {
		t.Errorf("--version: %q %v", got, err)
	}
}

// The env directory may set codex-launch's own variables, as start.sh's
// sourced secrets did: here CODEX_AUTH_REFRESH_OWNER=0 turns the prime into
// a watcher that never POSTs, and the child sees the directory's variables.
func TestEnvDirConfiguresTheLauncher(t *testing.T) {
	r := newRig(t)
	r.WriteCred("acct-l", time.Minute) // due
	envDir := filepath.Join(r.Dir, "secrets.d")
	os.MkdirAll(envDir, 0o700)
	os.WriteFile(filepath.Join(envDir, "CODEX_AUTH_REFRESH_OWNER"), []byte("0\n"), 0o600)
	os.WriteFile(filepath.Join(envDir, "WORKSPACE_ID"), []byte("ws-42\n"), 0o600)
	seen := filepath.Join(r.Dir, "seen")
	res := r.Command(nil, "--env-dir", envDir, "--", "sh", "-c", `echo "$WORKSPACE_ID" > "$1"`, "sh", seen)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	if n := r.Mock.Posts(); n != 0 {
		t.Errorf("%d POSTs although the env directory made this launcher a watcher", n)
	}
	if b, _ := os.ReadFile(seen); strings.TrimSpace(string(b)) != "ws-42" {
		t.Errorf("the child saw WORKSPACE_ID=%q", b)
	}
	// A flag still wins over the env directory.
	res = r.Command(nil, "--env-dir", envDir, "--refresh-owner=1", "--", "true")
	if res.Code != 0 || r.Mock.Posts() != 1 {
		t.Errorf("exit %d, %d POSTs: --refresh-owner=1 must win over the env directory\n%s", res.Code, r.Mock.Posts(), res.Stderr)
	}
}

// `refresh` alone is the loop: it refreshes a due credential and ends with 0
// on SIGTERM.
func TestRefreshLoopUntilTerm(t *testing.T) {
	r := newRig(t)
	r.WriteCred("acct-l", time.Minute)
	r.Start("refresh")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Mock.WaitPosts(ctx, 1); err != nil {
		t.Fatalf("the loop never refreshed: %v\n%s", err, r.Output.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := os.ReadFile(filepath.Join(r.CodexHome, "auth_refresh_status.json"))
		if err == nil && bytes.Contains(st, []byte(`"watchdog_loop": true`)) && bytes.Contains(st, []byte(`"refreshed"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status file from the loop: %s", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Signal(syscall.SIGTERM)
	if code := r.Wait(5 * time.Second); code != 0 {
		t.Errorf("refresh loop: exit %d after TERM, want 0\n%s", code, r.Output.String())
	}
}

// --log-format json: every line on stderr is one JSON object naming its
// sub-logger; durations are words ("4h"), not integer nanoseconds, and no
// value is null.
func TestJSONLogs(t *testing.T) {
	r := newRig(t)
	r.WriteCred("acct-l", time.Minute)
	r.Env["CODEX_LAUNCH_LOG_FORMAT"], r.Env["CODEX_LAUNCH_LOG_LEVEL"] = "json", "debug"
	// The child ends once the watchdog has said it started (its line
	// carries the safety margin), not before: the group would end first.
	r.Child = []string{"sh", "-c", `while [ ! -e "$OUT/go" ]; do sleep 0.01; done`}
	r.Start()
	r.WaitOutput(20*time.Second, "watchdog: starting")
	r.Touch("go")
	if code := r.Wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, r.Output.String())
	}
	stderr := r.Output.String()
	modules := map[string]bool{}
	durations := 0
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		mod, _ := m["@module"].(string)
		modules[mod] = true
		for k, v := range m {
			if v == nil {
				t.Errorf("%s is null in %s", k, line)
			}
		}
		if v, ok := m["safety_margin"]; ok {
			durations++
			if v != "4h" {
				t.Errorf("safety_margin = %#v, want \"4h\": %s", v, line)
			}
		}
	}
	if durations == 0 {
		t.Errorf("no line logged the safety margin:\n%s", stderr)
	}
	for _, want := range []string{"codex-launch.boot", "codex-launch.authwatch", "codex-launch.supervise"} {
		if !modules[want] {
			t.Errorf("no line from %s; modules seen: %v", want, modules)
		}
	}
}

// With a shared store configured, health and status say what the store's
// follower last recorded; its absence is said but does not fail health.
func TestHealthNotesTheSharedStore(t *testing.T) {
	r := newRig(t)
	r.WriteCred("acct-l", 10*time.Hour)
	if res := r.Command(nil, "refresh", "--once"); res.Code != 1 {
		t.Fatalf("refresh --once: exit %d\n%s", res.Code, res.Stderr)
	}
	store := map[string]string{"CODEX_LAUNCH_CREDENTIAL_STORE": "postgres://agent@127.0.0.1:1/codex"}
	res := r.Command(store, "health")
	if res.Code != 0 || !strings.Contains(res.Stdout, "credential store unknown") {
		t.Errorf("health with a shared store: exit %d %q", res.Code, res.Stdout)
	}
	res = r.Command(store, "status")
	if res.Code != 0 || !strings.Contains(res.Stdout, "store ") {
		t.Errorf("status with a shared store: exit %d %q", res.Code, res.Stdout)
	}
}
