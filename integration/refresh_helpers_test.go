package integration

// Helpers for the refresh proofs (refresh_*_test.go, seed_*_test.go): run the
// built codex-launch binary, or the seed watchdog it replaces, against a
// CODEX_HOME fixture and a tokenmock endpoint, and look at what came out.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// Exit codes of `refresh --once`, the seed's.
const (
	exitRefreshed = 0
	exitNothing   = 1
	exitTransient = 2
	exitPermanent = 3
)

// refreshLauncher is the codex-launch binary the refresh proofs run: the
// package's build, or a binary under study (an older commit, a variant) named
// by CODEX_LAUNCH_REFRESH_TEST_BINARY, which shows what the proofs catch.
func refreshLauncher(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CODEX_LAUNCH_REFRESH_TEST_BINARY"); p != "" {
		return p
	}
	return builtLauncher(t)
}

// seedScript returns the seed watchdog script (testenv.SeedScript).
func seedScript(t testing.TB) string {
	t.Helper()
	p := testenv.SeedScript()
	if _, err := os.Stat(p); err != nil {
		testenv.Unavailable(t, "the seed watchdog script is not at "+p+" (set CODEX_LAUNCH_SEED_SCRIPT)")
	}
	return p
}

// seedPath is a PATH for the seed on which python3 is a real interpreter,
// not a version manager's shell shim (the image has a plain python3; a shim
// would add a bash start per python call and misrepresent the seed).
func seedPath(t testing.TB) string {
	t.Helper()
	testenv.RequireCommand(t, "curl", "curl")
	p := testenv.SeedPython()
	if p == "" {
		if _, err := testenv.LookCommand("python3", "python3-minimal"); err == nil {
			p = testenv.SeedPython()
		}
	}
	if p != "" {
		return filepath.Dir(p) + ":/usr/bin:/bin"
	}
	testenv.Unavailable(t, "no python3 interpreter (an ELF binary) for the seed")
	return ""
}

// home is one CODEX_HOME fixture with the mock it talks to.
type home struct {
	t   testing.TB
	Dir string
	Srv *tokenmock.Server
	// Env are extra variables for both programs (settings under test).
	Env map[string]string
}

// newHome makes an empty CODEX_HOME in a fresh temporary directory.
func newHome(t testing.TB, srv *tokenmock.Server) *home {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "codex")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &home{t: t, Dir: dir, Srv: srv, Env: map[string]string{}}
}

func (h *home) authPath() string   { return filepath.Join(h.Dir, "auth.json") }
func (h *home) statusPath() string { return filepath.Join(h.Dir, "auth_refresh_status.json") }

// write installs an auth.json as the CLI would leave it (0600).
func (h *home) write(data []byte) {
	h.t.Helper()
	if err := os.WriteFile(h.authPath(), data, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// read returns auth.json's bytes (nil when absent).
func (h *home) read() []byte {
	h.t.Helper()
	b, err := os.ReadFile(h.authPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
	return b
}

// fileTokens parses auth.json's tokens; ok false when it does not parse.
func fileTokens(data []byte) (tokenmock.Credential, bool) {
	var f struct {
		Tokens *struct {
			IDToken      string `json:"id_token"`
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
			AccountID    string `json:"account_id"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(data, &f); err != nil || f.Tokens == nil {
		return tokenmock.Credential{}, false
	}
	return tokenmock.Credential{
		IDToken: f.Tokens.IDToken, AccessToken: f.Tokens.AccessToken,
		RefreshToken: f.Tokens.RefreshToken, AccountID: f.Tokens.AccountID,
	}, true
}

// sameTokens compares the three tokens and the account id.
func sameTokens(a, b tokenmock.Credential) bool {
	return a.IDToken == b.IDToken && a.AccessToken == b.AccessToken &&
		a.RefreshToken == b.RefreshToken && a.AccountID == b.AccountID
}

// status reads the status file as a generic object (nil when absent).
func (h *home) status() map[string]any {
	h.t.Helper()
	b, err := os.ReadFile(h.statusPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("status file is not a JSON object: %v", err)
	}
	return m
}

// run is one finished process.
type run struct {
	Code           int
	Stdout, Stderr []byte
	Wall           time.Duration
}

func (r run) output() string { return string(r.Stdout) + string(r.Stderr) }

// baseEnv is the environment both programs get: nothing inherited but what
// a program needs, no proxy, the mock's URL, and h.Env.
func (h *home) baseEnv(path string) []string {
	env := map[string]string{
		"PATH":                         path,
		"HOME":                         filepath.Dir(h.Dir),
		"LANG":                         "C.UTF-8",
		"NO_PROXY":                     "*",
		"CODEX_HOME":                   h.Dir,
		"CODEX_LAUNCH_REFRESH_TIMEOUT": "5s",
		"CODEX_LAUNCH_LOCK_TIMEOUT":    "5s",
		// A permanent answer is re-read for a rotation by someone else
		// this long (3 s by default) before the credential is dead.
		"CODEX_LAUNCH_RECHECK_WINDOW":      "300ms",
		"CODEX_AUTH_SAFETY_MARGIN_SECONDS": "600",
		"CODEX_AUTH_STALE_AFTER_SECONDS":   "604800",
	}
	if h.Srv != nil {
		env["CODEX_REFRESH_TOKEN_URL_OVERRIDE"] = h.Srv.URL
	}
	for k, v := range h.Env {
		if v == "\x00unset" {
			delete(env, k)
			continue
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// unset marks a variable of home.Env to be removed from the environment.
const unset = "\x00unset"

// launcherCmd prepares codex-launch with args in h's environment.
func (h *home) launcherCmd(ctx context.Context, args ...string) *exec.Cmd {
	h.t.Helper()
	cmd := exec.CommandContext(ctx, refreshLauncher(h.t), args...)
	cmd.Env = h.baseEnv(os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// seedCmd prepares the seed script with args in h's environment, with
// CODEX_PYTHON unset so that it finds python3 itself, as in the image.
func (h *home) seedCmd(ctx context.Context, args ...string) *exec.Cmd {
	h.t.Helper()
	script := seedScript(h.t)
	path := seedPath(h.t)
	cmd := exec.CommandContext(ctx, "/bin/bash", append([]string{script}, args...)...)
	cmd.Env = h.baseEnv(path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// finish runs cmd to completion (at most 30 s) and collects its outputs.
func finish(t testing.TB, cmd *exec.Cmd) run {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := run{Stdout: out.Bytes(), Stderr: errb.Bytes(), Wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("running %s: %v", cmd.Path, err)
	}
	return r
}

// once runs `codex-launch refresh --once` in h and checks that nothing it
// printed or wrote holds a token.
func (h *home) once(extra ...string) run {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := finish(h.t, h.launcherCmd(ctx, append([]string{"refresh", "--once"}, extra...)...))
	h.noLeak("codex-launch refresh --once output", []byte(r.output()))
	h.noLeakStatus()
	return r
}

// seedOnce runs the seed's --once in h.
func (h *home) seedOnce() run {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return finish(h.t, h.seedCmd(ctx, "--once"))
}

// noLeak fails the test when out holds a minted token or the sentinel.
func (h *home) noLeak(what string, out []byte) {
	h.t.Helper()
	var leaks []string
	if h.Srv != nil {
		leaks = h.Srv.Leaks(out)
	} else if bytes.Contains(out, []byte(tokenmock.Sentinel)) {
		leaks = []string{"sentinel"}
	}
	if len(leaks) > 0 {
		h.t.Errorf("%s holds a token: %v", what, leaks)
	}
}

func (h *home) noLeakStatus() {
	h.t.Helper()
	b, err := os.ReadFile(h.statusPath())
	if err == nil {
		h.noLeak("status file", b)
	}
}

// expired installs a generation-0 credential of account whose access token
// expired a minute ago, and returns it.
func (h *home) expired(account string) tokenmock.Credential {
	h.t.Helper()
	c := h.Srv.IssueWithExpiry(account, time.Now().Add(-time.Minute))
	h.write(h.Srv.AuthJSON(c, time.Now().Add(-time.Hour)))
	return c
}

// fresh installs a credential far from expiry, refreshed a minute ago.
func (h *home) fresh(account string) tokenmock.Credential {
	h.t.Helper()
	c := h.Srv.IssueWithExpiry(account, time.Now().Add(10*time.Hour))
	h.write(h.Srv.AuthJSON(c, time.Now().Add(-time.Minute)))
	return c
}

// wantTokens fails unless auth.json holds c's tokens.
func (h *home) wantTokens(c tokenmock.Credential, what string) {
	h.t.Helper()
	got, ok := fileTokens(h.read())
	if !ok {
		h.t.Fatalf("%s: auth.json does not parse", what)
	}
	if !sameTokens(got, c) {
		h.t.Errorf("%s: auth.json does not hold generation %d of %s", what, c.Generation, c.AccountID)
	}
}

// traceback matches a Python traceback in a program's output.
var traceback = regexp.MustCompile(`Traceback \(most recent call last\)`)

// tokenish matches anything that carries the mock's sentinel, so that a
// failure message never repeats a token.
var tokenish = regexp.MustCompile(`[^\s"']*` + tokenmock.Sentinel + `[^\s"']*`)

// lines returns s trimmed, shortened and with tokens redacted, for failure
// messages.
func lines(s string) string {
	s = tokenish.ReplaceAllString(strings.TrimSpace(s), "<token>")
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}
