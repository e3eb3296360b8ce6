package integration

// The harness of the real-CLI tests (cli_*_test.go): installing pinned
// @openai/codex releases, running each test inside a network namespace that
// has only loopback, a CODEX_HOME per scenario, and running the CLI and
// codex-launch there.
//
// Why the test re-executes itself: the mock servers must listen inside the
// same namespace as the CLI, or the CLI could not reach them, and nothing in
// the namespace can reach anything else. So a top-level test first checks
// what it needs (root, unshare, the CLI install, the built launcher), then
// runs its own test binary under `unshare -n` with only this test selected;
// the inner run brings lo up and does the work. The outer run relays the
// inner output and fails when the inner run fails.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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

const (
	cliNetnsEnv  = "CODEX_LAUNCH_TEST_CLI_NETNS"  // "1" in the inner run
	cliBinsEnv   = "CODEX_LAUNCH_TEST_CLI_BINS"   // "VERSION=PATH;..." of the installed CLIs
	cliRoundsEnv = "CODEX_LAUNCH_CLI_RACE_ROUNDS" // rounds per race interleaving (default 3)
	cliIPEnv     = "CODEX_LAUNCH_TEST_CLI_IP"     // path of ip(8), found by the outer run

	// cliUID is the unprivileged user the ownership and launcher tests run
	// the CLI as: a bare number without a passwd entry, as containers often
	// use.
	cliUID = 4711
)

// cliVersion is one pinned CLI release and what the tests learnt about it.
type cliVersion struct {
	Version string
	Bin     string
	// RefreshBelow is an access-token lifetime left at which this CLI
	// refreshes before a turn. 0.171.0 does it inside 5 minutes of exp (as
	// the contract says); 0.130.0 only once exp has passed.
	RefreshBelow time.Duration
	// Window is how long before the access token's exp the CLI starts
	// refreshing: 5 minutes for 0.171.0, none (at exp) for 0.130.0.
	Window time.Duration
	// Locks says whether the CLI takes auth.lock / auth.json.lock.
	Locks bool
}

// cliKnown is what the tests expect of each pinned version; a version not
// listed is expected to behave as the newest one.
func cliKnown(version string) cliVersion {
	switch version {
	case "0.130.0":
		return cliVersion{Version: version, RefreshBelow: -30 * time.Second, Window: 0, Locks: false}
	default:
		return cliVersion{Version: version, RefreshBelow: 2 * time.Minute, Window: 5 * time.Minute, Locks: true}
	}
}

// cliEnv is what the inner run gets: the versions with their binaries, and
// the built launcher.
type cliEnv struct {
	Launcher string
	Versions []cliVersion
}

// cliSetup returns the environment when t runs inside the namespace. Outside,
// it prepares everything, re-runs t in a fresh namespace, and returns nil:
// the caller returns at once.
func cliSetup(t *testing.T) *cliEnv {
	t.Helper()
	if os.Getenv(cliNetnsEnv) == "1" {
		return cliInside(t)
	}
	// The real-CLI tests wait on the CLI far more than they compute: run
	// them side by side, each in its own namespace.
	t.Parallel()
	testenv.RequireNetNamespace(t)
	ip := testenv.RequireCommand(t, "ip", "iproute2")
	unshare := testenv.RequireCommand(t, "unshare", "util-linux")
	bins := installCLIs(t)
	builtLauncher(t) // the package's TestMain builds it, in the inner run too

	args := []string{"-n", os.Args[0],
		"-test.run=^" + t.Name() + "$", "-test.v=true", "-test.count=1", "-test.timeout=4m"}
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(cliCleanEnv(os.Environ()),
		cliNetnsEnv+"=1",
		cliBinsEnv+"="+bins,
		cliIPEnv+"="+ip,
	)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("the test inside the network namespace failed: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("the test inside the network namespace did not pass (see output above)")
	}
	return nil
}

// cliEachVersion is the frame of every real-CLI test: cliSetup, then fn for
// each pinned version, side by side, as subtests named after the version.
func cliEachVersion(t *testing.T, fn func(t *testing.T, env *cliEnv, v cliVersion)) {
	t.Helper()
	env := cliSetup(t)
	if env == nil {
		return
	}
	for _, v := range env.Versions {
		t.Run(v.Version, func(t *testing.T) {
			t.Parallel()
			fn(t, env, v)
		})
	}
}

// cliInside runs in the namespace: bring lo up, make sure nothing else is up,
// and read what the outer run prepared.
func cliInside(t *testing.T) *cliEnv {
	t.Helper()
	ip := os.Getenv(cliIPEnv)
	if out, err := exec.Command(ip, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	out, err := exec.Command(ip, "-o", "link", "show", "up").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] != "lo:" {
			t.Fatalf("network namespace has a link up besides lo: %s", line)
		}
	}
	env := &cliEnv{Launcher: builtLauncher(t)}
	for _, kv := range strings.Split(os.Getenv(cliBinsEnv), ";") {
		v, bin, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		cv := cliKnown(v)
		cv.Bin = bin
		env.Versions = append(env.Versions, cv)
	}
	if len(env.Versions) == 0 {
		t.Fatalf("inner run without %s", cliBinsEnv)
	}
	return env
}

// cliCleanEnv drops proxy variables (the CLI honours them even for loopback)
// and our own markers.
func cliCleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy":
			continue
		}
		if strings.HasPrefix(k, "CODEX_") && k != cliRoundsEnv {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// pinnedCLIVersions reads testdata/cli/versions.
func pinnedCLIVersions(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "cli", "versions"))
	if err != nil {
		t.Fatalf("pinned CLI versions: %v", err)
	}
	defer f.Close()
	var vs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			vs = append(vs, line)
		}
	}
	return vs
}

// installCLIs installs every pinned version (a no-op when cached) and
// returns them as "VERSION=PATH;...".
func installCLIs(t *testing.T) string {
	t.Helper()
	script := filepath.Join(testenv.ModuleRoot(), "scripts", "install-codex-cli.sh")
	cache := os.Getenv("CODEX_CLI_CACHE")
	if cache == "" {
		cache = filepath.Join(testenv.ModuleRoot(), ".cache", "codex-cli")
	}
	var parts []string
	for _, v := range pinnedCLIVersions(t) {
		if _, err := os.Stat(filepath.Join(cache, v, ".installed")); err != nil {
			// Not cached: the script needs npm (Debian's npm brings node).
			testenv.RequireCommand(t, "npm", "npm")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		cmd := exec.CommandContext(ctx, script, v)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err != nil {
			testenv.Unavailable(t, fmt.Sprintf("cannot install @openai/codex@%s with npm: %v: %s", v, err, cliLastLine(stderr.String())))
		}
		bin := cliLastLine(string(out))
		if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
			t.Fatalf("install script printed %q for %s, not an executable", bin, v)
		}
		parts = append(parts, v+"="+bin)
	}
	return strings.Join(parts, ";")
}

func cliLastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// cliScenario is one CODEX_HOME with its own token endpoint and backend.
type cliScenario struct {
	t       *testing.T
	env     *cliEnv
	Dir     string // CODEX_HOME
	Home    string // HOME for the processes
	TM      *tokenmock.Server
	BE      *cliBackend
	Account string
}

// newCLIScenario makes a CODEX_HOME (owned by owner when not nil) with the
// config.toml that points the CLI at the mocks, and starts the mocks.
func newCLIScenario(t *testing.T, env *cliEnv, owner *syscall.Credential) *cliScenario {
	t.Helper()
	base := t.TempDir()
	// t.TempDir's directories are 0700: open them for the unprivileged uid.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &cliScenario{t: t, env: env, Dir: filepath.Join(base, "codex-home"), Home: filepath.Join(base, "home"), Account: "acct-cli"}
	for _, d := range []string{s.Dir, s.Home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != nil {
			if err := os.Chown(d, int(owner.Uid), int(owner.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Tokens live well beyond codex-launch's default 4 h safety margin: a
	// fresh token is one neither side wants to refresh.
	s.TM = tokenmock.Start(tokenmock.Options{AccessTTL: 24 * time.Hour})
	t.Cleanup(s.TM.Close)
	s.BE = startCLIBackend()
	t.Cleanup(s.BE.Close)
	config := fmt.Sprintf(`# Written by the CLI compatibility tests: everything on loopback.
chatgpt_base_url = %q
openai_base_url = %q
cli_auth_credentials_store = "file"
check_for_update_on_startup = false

[analytics]
# Off: otherwise the CLI spends 5 s at exit trying to export metrics to a
# host outside the namespace.
enabled = false
`, s.BE.ChatGPTBaseURL(), s.BE.OpenAIBaseURL())
	s.writeFile("config.toml", []byte(config), 0o644, owner)
	return s
}

// newDueCLIScenario is newCLIScenario with an auth.json (owned by owner when
// not nil) holding generation 0 of a credential that CLI v refreshes before
// its next turn.
func newDueCLIScenario(t *testing.T, env *cliEnv, v cliVersion, owner *syscall.Credential) (*cliScenario, tokenmock.Credential) {
	t.Helper()
	s := newCLIScenario(t, env, owner)
	gen0 := s.TM.IssueWithExpiry(s.Account, time.Now().Add(v.RefreshBelow))
	s.WriteAuth(gen0, owner)
	return s, gen0
}

// AuthPath is $CODEX_HOME/auth.json.
func (s *cliScenario) AuthPath() string { return filepath.Join(s.Dir, "auth.json") }

// WriteAuth writes cred as the CLI would, last refreshed an hour ago.
func (s *cliScenario) WriteAuth(cred tokenmock.Credential, owner *syscall.Credential) {
	s.writeFile("auth.json", s.TM.AuthJSON(cred, time.Now().Add(-time.Hour)), 0o600, owner)
}

func (s *cliScenario) writeFile(name string, data []byte, mode os.FileMode, owner *syscall.Credential) {
	s.t.Helper()
	p := filepath.Join(s.Dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		s.t.Fatal(err)
	}
	if owner != nil {
		if err := os.Chown(p, int(owner.Uid), int(owner.Gid)); err != nil {
			s.t.Fatal(err)
		}
	}
}

// FileTokens reads the refresh and access tokens auth.json holds now.
func (s *cliScenario) FileTokens() (refresh, access string) {
	s.t.Helper()
	data, err := os.ReadFile(s.AuthPath())
	if err != nil {
		s.t.Fatalf("read auth.json: %v", err)
	}
	refresh, access = cliJSONString(data, "refresh_token"), cliJSONString(data, "access_token")
	if refresh == "" || access == "" {
		s.t.Fatalf("auth.json has no tokens (%d bytes)", len(data))
	}
	return refresh, access
}

// cliJSONString finds "key": "value" in the CLI's auth.json without a full
// decode, so a file torn by a writer shows up as missing tokens.
func cliJSONString(data []byte, key string) string {
	_, after, ok := bytes.Cut(data, []byte(`"`+key+`": "`))
	if !ok {
		return ""
	}
	v, _, ok := bytes.Cut(after, []byte(`"`))
	if !ok {
		return ""
	}
	return string(v)
}

// cliResult is how a process ended.
type cliResult struct {
	Code   int
	Stdout string
	Stderr string
	Took   time.Duration
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d after %v\n--- stdout:\n%s\n--- stderr:\n%s", r.Code, r.Took.Round(time.Millisecond), cliTail(r.Stdout, 40), cliTail(r.Stderr, 40))
}

func cliTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// baseEnv is the environment every process of a scenario gets.
func (s *cliScenario) baseEnv() []string {
	return append(cliCleanEnv(os.Environ()),
		"HOME="+s.Home,
		"CODEX_HOME="+s.Dir,
		"CODEX_REFRESH_TOKEN_URL_OVERRIDE="+s.TM.URL,
		"NO_PROXY=*",
	)
}

// run runs argv with the scenario's environment, as cred when not nil.
func (s *cliScenario) run(ctx context.Context, cred *syscall.Credential, extraEnv []string, argv ...string) cliResult {
	s.t.Helper()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(s.baseEnv(), extraEnv...)
	cmd.Dir = s.Home
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := cliResult{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Code = 128 + int(ws.Signal())
		}
	default:
		s.t.Fatalf("run %s: %v", filepath.Base(argv[0]), err)
	}
	if ctx.Err() != nil {
		s.t.Errorf("%s did not finish in time: %s", filepath.Base(argv[0]), r)
	}
	return r
}

// Codex runs the CLI of version v.
func (s *cliScenario) Codex(ctx context.Context, v cliVersion, cred *syscall.Credential, args ...string) cliResult {
	return s.run(ctx, cred, nil, append([]string{v.Bin}, args...)...)
}

// Turn runs one `codex exec` turn.
func (s *cliScenario) Turn(ctx context.Context, v cliVersion, cred *syscall.Credential) cliResult {
	return s.Codex(ctx, v, cred, "exec", "--skip-git-repo-check", "say hi")
}

// Launch runs codex-launch and checks that its output holds no token.
func (s *cliScenario) Launch(ctx context.Context, args ...string) cliResult {
	s.t.Helper()
	return s.LaunchEnv(ctx, nil, args...)
}

// LaunchEnv is Launch with extra environment variables.
func (s *cliScenario) LaunchEnv(ctx context.Context, extraEnv []string, args ...string) cliResult {
	s.t.Helper()
	r := s.run(ctx, nil, append([]string{"CODEX_LAUNCH_LOG_LEVEL=debug"}, extraEnv...), append([]string{s.env.Launcher}, args...)...)
	s.checkNoLeak("codex-launch output", r.Stdout+r.Stderr)
	return r
}

func (s *cliScenario) checkNoLeak(what, out string) {
	s.t.Helper()
	if leaks := s.TM.Leaks([]byte(out)); len(leaks) > 0 {
		s.t.Errorf("%s contains tokens: %v", what, leaks)
	}
}

// tokenPosts counts the POSTs the token endpoint received: the CLI's reach
// it through CODEX_REFRESH_TOKEN_URL_OVERRIDE (baseEnv), as the control runs
// show.
func (s *cliScenario) tokenPosts() int { return s.TM.Posts() }

// postsSummary describes the token endpoint's requests, token-free:
// "gen0:refreshed(proactive_expiry) gen0:reused(-)".
func (s *cliScenario) postsSummary() string {
	var parts []string
	for _, r := range s.TM.Requests() {
		reason, _ := r.Fields["refresh_reason"].(string)
		if reason == "" {
			reason = "-"
		}
		parts = append(parts, fmt.Sprintf("gen%d:%s:%s(%s)", r.Generation, cliRequester(r), r.Outcome, reason))
	}
	return strings.Join(parts, " ")
}

// cliRequester tells codex-launch's token requests (User-Agent codex-launch)
// from the CLI's.
func cliRequester(r tokenmock.Request) string {
	if strings.HasPrefix(r.Header.Get("User-Agent"), "codex-launch") {
		return "launcher"
	}
	return "cli"
}

// cliUIDCred is the credential of the unprivileged test user.
func cliUIDCred() *syscall.Credential {
	return &syscall.Credential{Uid: cliUID, Gid: cliUID}
}

// cliOwnerOf returns a path's uid and gid.
func cliOwnerOf(t *testing.T, p string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return int(sys.Uid), int(sys.Gid), st.Mode()
}
