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

// rig is one CODEX_HOME with a mock endpoint.
type rig struct {
	t    *testing.T
	srv  *tokenmock.Server
	dir  string // scratch for the child's reports
	home string // CODEX_HOME
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: 10 * time.Hour}) // beyond the 4h margin: fresh
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	home := filepath.Join(dir, "codex")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, srv: srv, dir: dir, home: home}
}

// writeCred writes a credential whose access token expires in d.
func (r *rig) writeCred(d time.Duration) tokenmock.Credential {
	r.t.Helper()
	c := r.srv.IssueWithExpiry("acct-l", time.Now().Add(d))
	if err := os.WriteFile(filepath.Join(r.home, "auth.json"), r.srv.AuthJSON(c, time.Now().Add(-time.Hour)), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rig) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + r.dir,
		"CODEX_HOME=" + r.home,
		"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + r.srv.URL,
		"CODEX_LAUNCH_STOP_TIMEOUT=2s",
		"CODEX_LAUNCH_RECHECK_WINDOW=200ms", // a permanent answer is final sooner
	}, extra...)
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// run runs codex-launch with args and env, bounded by a generous timeout.
func (r *rig) run(env []string, args ...string) result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, launcherBin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	res := result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if err != nil && cmd.ProcessState == nil {
		r.t.Fatalf("codex-launch did not run: %v", err)
	}
	r.noLeak(res.stdout + res.stderr)
	return res
}

func (r *rig) noLeak(out string) {
	r.t.Helper()
	if leaks := r.srv.Leaks([]byte(out)); len(leaks) > 0 {
		r.t.Errorf("token in codex-launch's output: %v", leaks)
	}
}

// accessTokenIn reads the access token an auth.json holds (a copy the child
// made, or the file itself).
func accessTokenIn(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(`"access_token": "`))
	if i < 0 {
		t.Fatalf("%s has no access_token", path)
	}
	rest := data[i+len(`"access_token": "`):]
	return string(rest[:bytes.IndexByte(rest, '"')])
}

func TestRefreshBeforeTheChildStarts(t *testing.T) {
	r := newRig(t)
	old := r.writeCred(time.Minute) // inside the 4h default margin: due
	seen := filepath.Join(r.dir, "seen.json")
	res := r.run(r.env(), "--", "sh", "-c", `cp "$CODEX_HOME/auth.json" "$1"`, "sh", seen)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	latest, _ := r.srv.Latest("acct-l")
	got := accessTokenIn(t, seen)
	if got == old.AccessToken || got != latest.AccessToken || latest.Generation != 1 {
		t.Errorf("the child's first look did not see the refreshed token (generation %d)", latest.Generation)
	}
	if n := r.srv.Posts(); n != 1 {
		t.Errorf("%d POSTs, want exactly 1", n)
	}
	if !strings.Contains(res.stderr, "refresh: ok") {
		t.Errorf("no refresh line in the log:\n%s", res.stderr)
	}
}

func TestFreshCredentialMakesNoPost(t *testing.T) {
	r := newRig(t)
	r.writeCred(10 * time.Hour)
	res := r.run(r.env(), "true")
	if res.code != 0 || r.srv.Posts() != 0 {
		t.Fatalf("exit %d, %d POSTs; want 0 and none: %s", res.code, r.srv.Posts(), res.stderr)
	}
}

func TestExitCodes(t *testing.T) {
	r := newRig(t)
	r.writeCred(10 * time.Hour)
	notExec := filepath.Join(r.dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"sh", "-c", "exit 0"}, 0},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{[]string{"--exit-zero", "143", "--", "sh", "-c", "kill -TERM $$"}, 0},
		{[]string{"no-such-program-codex-launch"}, 127},
		{[]string{notExec}, 126},
		{[]string{"--stop-timeout", "forever", "--", "true"}, 125},
		{[]string{"--user", "no-such-user-codex-launch", "--", "true"}, 125},
	} {
		res := r.run(r.env(), c.args...)
		if res.code != c.want {
			t.Errorf("%q: exit %d, want %d\n%s", c.args, res.code, c.want, res.stderr)
		}
	}
}

// startLauncher starts codex-launch and returns a channel closed when it has
// exited.
func startLauncher(t *testing.T, env []string, args ...string) (*exec.Cmd, *testenv.Buffer, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(launcherBin, args...)
	cmd.Env = env
	errb := &testenv.Buffer{}
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd, errb, done
}

func waitExit(t *testing.T, done <-chan struct{}, within time.Duration, errb *testenv.Buffer, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("codex-launch did not end within %s %s:\n%s", within, what, errb.String())
	}
}

// A TERM while the prime waits (here for the CLI's auth.lock) ends
// codex-launch at once with 143, and no child ever starts.
func TestStopDuringPrimeIsPrompt(t *testing.T) {
	r := newRig(t)
	r.writeCred(time.Minute)
	before, _ := os.ReadFile(filepath.Join(r.home, "auth.json"))
	lock, err := os.OpenFile(filepath.Join(r.home, "auth.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(r.dir, "child-ran")
	cmd, errb, done := startLauncher(t, r.env("CODEX_LAUNCH_LOCK_TIMEOUT=30s", "CODEX_LAUNCH_LOG_LEVEL=debug"), "--", "touch", marker)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "refresh: starting") && !strings.Contains(errb.String(), "auth.lock") {
		if time.Now().After(deadline) {
			t.Fatalf("the prime never started:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // inside the lock wait
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, done, 5*time.Second, errb, "after TERM during the prime")
	if code := cmd.ProcessState.ExitCode(); code != 128+15 {
		t.Errorf("exit %d after TERM during the prime, want 143\n%s", code, errb.String())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the child started although TERM came during the prime")
	}
	after, _ := os.ReadFile(filepath.Join(r.home, "auth.json"))
	if !bytes.Equal(before, after) || r.srv.Posts() != 0 {
		t.Errorf("auth.json changed or a POST was made (%d) although the refresh was abandoned", r.srv.Posts())
	}
	r.noLeak(errb.String())
	t.Logf("ended %s after TERM", time.Since(sent).Round(time.Millisecond))
}

// A TERM while the prime's POST is in flight waits for the answer and
// commits it: the redeemed refresh token is not lost. Then 143, no child.
func TestStopDuringPrimeKeepsARedeemedToken(t *testing.T) {
	r := newRig(t)
	r.writeCred(time.Minute)
	gate := r.srv.Hold(1)
	defer gate.Release()
	marker := filepath.Join(r.dir, "child-ran")
	cmd, errb, done := startLauncher(t, r.env(), "--", "touch", marker)
	select {
	case <-gate.Arrived():
	case <-time.After(20 * time.Second):
		t.Fatalf("the prime never reached the endpoint:\n%s", errb.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	select {
	case <-done:
		t.Fatalf("codex-launch exited with a POST in flight; its answer would be lost:\n%s", errb.String())
	default:
	}
	gate.Release()
	waitExit(t, done, 10*time.Second, errb, "after the answer")
	if code := cmd.ProcessState.ExitCode(); code != 128+15 {
		t.Errorf("exit %d, want 143\n%s", code, errb.String())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the child started although TERM came during the prime")
	}
	latest, _ := r.srv.Latest("acct-l")
	if got := accessTokenIn(t, filepath.Join(r.home, "auth.json")); latest.Generation != 1 || got != latest.AccessToken {
		t.Error("the redeemed refresh was not committed to auth.json")
	}
	r.noLeak(errb.String())
}

func TestDeadCredential(t *testing.T) {
	r := newRig(t)
	r.writeCred(time.Minute)
	marker := filepath.Join(r.dir, "child-ran")

	// With --require-auth: exit 125, no child.
	r.srv.Script(tokenmock.Error(401, "refresh_token_invalidated"))
	res := r.run(r.env("CODEX_LAUNCH_REQUIRE_AUTH=1", "CODEX_LAUNCH_RECHECK_WINDOW=0"), "--", "touch", marker)
	if res.code != exitLaunch {
		t.Errorf("dead credential with --require-auth: exit %d, want 125\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the child ran despite --require-auth")
	}
	if !strings.Contains(res.stderr, "[ERROR]") || !strings.Contains(res.stderr, "new login") {
		t.Errorf("no error line an operator cannot miss:\n%s", res.stderr)
	}

	// Without it: the error, and the child runs.
	r.srv.Script(tokenmock.Error(401, "refresh_token_invalidated"))
	res = r.run(r.env(), "--", "sh", "-c", `touch "$1"; exit 3`, "sh", marker)
	if res.code != 3 {
		t.Errorf("dead credential: exit %d, want the child's 3\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("the child did not run")
	}
	if n := strings.Count(res.stderr, "[ERROR]"); n != 1 || !strings.Contains(res.stderr, "new login") {
		t.Errorf("want one error line that asks for a new login, got %d:\n%s", n, res.stderr)
	}
}

func TestTransientPrimeFailureStartsTheChild(t *testing.T) {
	r := newRig(t)
	r.writeCred(time.Minute)
	r.srv.Script(tokenmock.Error(503, "unavailable"))
	res := r.run(r.env(), "--", "sh", "-c", "exit 4")
	if res.code != 4 {
		t.Errorf("exit %d, want the child's 4\n%s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "[WARN]") || !strings.Contains(res.stderr, "transient failure") {
		t.Errorf("no warning for the transient prime failure:\n%s", res.stderr)
	}
}

// The child does not wait for a POST longer than --prime-timeout; the
// refresh finishes beside it and is committed. The endpoint answers only
// once the child has run, so the child provably started first.
func TestPrimeTimeoutStartsTheChild(t *testing.T) {
	r := newRig(t)
	r.writeCred(time.Minute)
	gate := r.srv.Hold(1)
	defer gate.Release()
	marker := filepath.Join(r.dir, "child-ran")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			if _, err := os.Stat(marker); err == nil {
				gate.Release()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	res := r.run(r.env("CODEX_LAUNCH_PRIME_TIMEOUT=1s"), "--", "sh", "-c", `touch "$1"; sleep 0.2; exit 5`, "sh", marker)
	if res.code != 5 {
		t.Errorf("exit %d, want the child's 5\n%s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "--prime-timeout") || !strings.Contains(res.stderr, "[WARN]") {
		t.Errorf("no warning for the prime timeout:\n%s", res.stderr)
	}
	latest, _ := r.srv.Latest("acct-l")
	if got := accessTokenIn(t, filepath.Join(r.home, "auth.json")); latest.Generation != 1 || got != latest.AccessToken {
		t.Errorf("the refresh that went on beside the child was not committed:\n%s", res.stderr)
	}
}

func TestCredentialVariableLeavesTheChildEnvironment(t *testing.T) {
	r := newRig(t)
	c := r.srv.Issue("acct-l") // fresh: boot writes it, the prime keeps it
	blob := string(r.srv.AuthJSON(c, time.Now()))
	envDump := filepath.Join(r.dir, "env.txt")
	res := r.run(r.env("CODEX_AUTH_JSON="+blob, "CODEX_CHATGPT_AUTH_JSON="+blob, "CODEX_LAUNCH_CREDENTIAL_KEYS=k1:"+tokenmock.Sentinel),
		"--", "sh", "-c", `env > "$1"`, "sh", envDump)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	dump, err := os.ReadFile(envDump)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range secretVariables(optionTable()) {
		if bytes.Contains(dump, []byte(name+"=")) {
			t.Errorf("secret variable %s reached the child's environment", name)
		}
	}
	if leaks := r.srv.Leaks(dump); len(leaks) > 0 {
		t.Errorf("token in the child's environment: %v", leaks)
	}
	if got := accessTokenIn(t, filepath.Join(r.home, "auth.json")); got != c.AccessToken {
		t.Error("auth.json was not seeded from CODEX_AUTH_JSON")
	}
}

func TestRefreshOnceAndHealth(t *testing.T) {
	r := newRig(t)
	// Empty CODEX_HOME: nothing to do (the image's smoke check), unhealthy.
	if res := r.run(r.env(), "refresh", "--once"); res.code != 1 {
		t.Errorf("refresh --once on an empty CODEX_HOME: exit %d, want 1\n%s", res.code, res.stderr)
	}
	if res := r.run(r.env(), "health"); res.code != 1 || !strings.Contains(res.stdout, "no_credential") {
		t.Errorf("health without credential: exit %d %q", res.code, res.stdout)
	}
	// Due credential: refreshed (0), then nothing to do (1), then healthy.
	r.writeCred(time.Minute)
	if res := r.run(r.env(), "refresh", "--once"); res.code != 0 {
		t.Errorf("refresh --once on a due credential: exit %d\n%s", res.code, res.stderr)
	}
	if res := r.run(r.env(), "refresh", "--once"); res.code != 1 {
		t.Errorf("second refresh --once: exit %d, want 1\n%s", res.code, res.stderr)
	}
	res := r.run(r.env(), "health")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "healthy: ") || strings.Count(res.stdout, "\n") != 1 {
		t.Errorf("health: exit %d %q", res.code, res.stdout)
	}
	// Permanent failure: 3, and health says dead.
	r.writeCred(time.Minute)
	r.srv.Script(tokenmock.Error(401, "refresh_token_invalidated"))
	if res := r.run(r.env(), "refresh", "--once"); res.code != 3 {
		t.Errorf("refresh --once, permanent: exit %d, want 3\n%s", res.code, res.stderr)
	}
	if res := r.run(r.env(), "health"); res.code != 1 || !strings.Contains(res.stdout, "dead") {
		t.Errorf("health after a permanent failure: exit %d %q", res.code, res.stdout)
	}
	// Transient failure: 2.
	r.srv.Script(tokenmock.Error(503, "unavailable"))
	r.writeCred(time.Minute)
	if res := r.run(r.env(), "refresh", "--once"); res.code != 2 {
		t.Errorf("refresh --once, transient: exit %d, want 2\n%s", res.code, res.stderr)
	}
	// status, both forms, token-free.
	if res := r.run(r.env(), "status"); res.code != 0 || !strings.Contains(res.stdout, "health") {
		t.Errorf("status: exit %d %q", res.code, res.stdout)
	}
	if res := r.run(r.env(), "status", "--json"); res.code != 0 || !strings.Contains(res.stdout, `"health"`) {
		t.Errorf("status --json: exit %d %q", res.code, res.stdout)
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
	r.writeCred(time.Minute) // due
	envDir := filepath.Join(r.dir, "secrets.d")
	os.MkdirAll(envDir, 0o700)
	os.WriteFile(filepath.Join(envDir, "CODEX_AUTH_REFRESH_OWNER"), []byte("0\n"), 0o600)
	os.WriteFile(filepath.Join(envDir, "WORKSPACE_ID"), []byte("ws-42\n"), 0o600)
	seen := filepath.Join(r.dir, "seen")
	res := r.run(r.env(), "--env-dir", envDir, "--", "sh", "-c", `echo "$WORKSPACE_ID" > "$1"`, "sh", seen)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if n := r.srv.Posts(); n != 0 {
		t.Errorf("%d POSTs although the env directory made this launcher a watcher", n)
	}
	if b, _ := os.ReadFile(seen); strings.TrimSpace(string(b)) != "ws-42" {
		t.Errorf("the child saw WORKSPACE_ID=%q", b)
	}
	// A flag still wins over the env directory.
	res = r.run(r.env(), "--env-dir", envDir, "--refresh-owner=1", "--", "true")
	if res.code != 0 || r.srv.Posts() != 1 {
		t.Errorf("exit %d, %d POSTs: --refresh-owner=1 must win over the env directory\n%s", res.code, r.srv.Posts(), res.stderr)
	}
}

// `refresh` alone is the loop: it refreshes a due credential and ends with 0
// on SIGTERM.
func TestRefreshLoopUntilTerm(t *testing.T) {
	r := newRig(t)
	r.writeCred(time.Minute)
	cmd, errb, done := startLauncher(t, r.env(), "refresh")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.srv.WaitPosts(ctx, 1); err != nil {
		t.Fatalf("the loop never refreshed: %v\n%s", err, errb.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := os.ReadFile(filepath.Join(r.home, "auth_refresh_status.json"))
		if err == nil && bytes.Contains(st, []byte(`"watchdog_loop": true`)) && bytes.Contains(st, []byte(`"refreshed"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status file from the loop: %s", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, done, 5*time.Second, errb, "after TERM")
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("refresh loop: exit %d after TERM, want 0\n%s", code, errb.String())
	}
	r.noLeak(errb.String())
}

// --log-format json: every line on stderr is one JSON object naming its
// sub-logger; durations are words ("4h"), not integer nanoseconds, and no
// value is null.
func TestJSONLogs(t *testing.T) {
	r := newRig(t)
	r.writeCred(time.Minute)
	res := r.run(r.env("CODEX_LAUNCH_LOG_FORMAT=json", "CODEX_LAUNCH_LOG_LEVEL=debug"), "--", "true")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	modules := map[string]bool{}
	durations := 0
	for _, line := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
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
		t.Errorf("no line logged the safety margin:\n%s", res.stderr)
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
	r.writeCred(10 * time.Hour)
	if res := r.run(r.env(), "refresh", "--once"); res.code != 1 {
		t.Fatalf("refresh --once: exit %d\n%s", res.code, res.stderr)
	}
	store := "CODEX_LAUNCH_CREDENTIAL_STORE=postgres://agent@127.0.0.1:1/codex"
	res := r.run(r.env(store), "health")
	if res.code != 0 || !strings.Contains(res.stdout, "credential store unknown") {
		t.Errorf("health with a shared store: exit %d %q", res.code, res.stdout)
	}
	res = r.run(r.env(store), "status")
	if res.code != 0 || !strings.Contains(res.stdout, "store ") {
		t.Errorf("status with a shared store: exit %d %q", res.code, res.stdout)
	}
}
