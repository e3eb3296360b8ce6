package testenv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/procstat"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// Launch is the one harness of the tests that run the built codex-launch: a
// scratch directory, a CODEX_HOME path in it, a loopback tokenmock as the
// token endpoint, the launcher's environment, and one run of the launcher
// (Start, Wait) as a plain child or, with PID1, as PID 1 of a new PID
// namespace; Command runs it once more to its end (a subcommand, a short
// launch). Every output it collects is checked for the mock's tokens.
type Launch struct {
	T         testing.TB
	Bin       string // the built codex-launch
	Dir       string // 0755: scripts live here; HOME
	CodexHome string // not created: boot does, or WriteAuth
	Out       string // 0777: the child writes its observations here ($OUT)
	Mock      *tokenmock.Server
	// Env is the launcher's environment beyond Environ's base; an empty
	// value removes a base variable.
	Env   map[string]string
	Args  []string // launcher flags, before "--"
	Child []string // the child's argv; none: no "--" is added
	// PID1 runs Start's launcher as PID 1 of a new PID namespace (unshare
	// --pid --fork --mount-proc), as in a container; it needs root.
	PID1 bool

	Cmd    *exec.Cmd // the started process (unshare when PID1)
	Output Buffer    // its stdout and stderr
	Exited time.Time // when it ended
	done   chan struct{}
	err    error
}

// NewLaunch prepares a run of bin: directories reachable by any user (so
// that --user tests work) and a mock started with opts.
func NewLaunch(t testing.TB, bin string, opts tokenmock.Options) *Launch {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	mock := tokenmock.Start(opts)
	t.Cleanup(mock.Close)
	return &Launch{T: t, Bin: bin, Dir: dir, CodexHome: filepath.Join(dir, "codex"), Out: out, Mock: mock, Env: map[string]string{}}
}

// AuthJSON is a ChatGPT auth.json for c as the CLI writes it.
func AuthJSON(c tokenmock.Credential, lastRefresh time.Time) []byte {
	return tokenmock.FormatAuthJSON(c, lastRefresh, tokenmock.FileOptions{})
}

// Holds reports whether data (an auth.json) carries c's refresh and access tokens.
func Holds(data []byte, c tokenmock.Credential) bool {
	return bytes.Contains(data, []byte(c.RefreshToken)) && bytes.Contains(data, []byte(c.AccessToken))
}

// Script writes an executable /bin/sh script into Dir and returns its path.
func (l *Launch) Script(name, body string) string {
	l.T.Helper()
	p := filepath.Join(l.Dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		l.T.Fatal(err)
	}
	return p
}

// WriteAuth puts an auth.json into CODEX_HOME (creating it), as a CLI would
// have left it on a volume.
func (l *Launch) WriteAuth(data []byte) {
	l.T.Helper()
	if err := os.MkdirAll(l.CodexHome, 0o700); err != nil {
		l.T.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.CodexHome, "auth.json"), data, 0o600); err != nil {
		l.T.Fatal(err)
	}
}

// WriteCred issues a credential of account whose access token expires in d
// and writes it as auth.json, last refreshed an hour ago.
func (l *Launch) WriteCred(account string, d time.Duration) tokenmock.Credential {
	l.T.Helper()
	c := l.Mock.IssueWithExpiry(account, time.Now().Add(d))
	l.WriteAuth(AuthJSON(c, time.Now().Add(-time.Hour)))
	return c
}

// ReadAuth reads CODEX_HOME/auth.json.
func (l *Launch) ReadAuth() []byte {
	l.T.Helper()
	data, err := os.ReadFile(filepath.Join(l.CodexHome, "auth.json"))
	if err != nil {
		l.T.Fatal(err)
	}
	return data
}

// OutFile reads what the child wrote to Out/name ("" when it did not).
func (l *Launch) OutFile(name string) string {
	data, err := os.ReadFile(filepath.Join(l.Out, name))
	if err != nil {
		return ""
	}
	return string(data)
}

// Environ is the launcher's whole environment: no inherited proxies (the
// mock is on loopback), the mock as the token endpoint, debug logs, then Env.
func (l *Launch) Environ() []string {
	env := map[string]string{
		"PATH":                             "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME":                             l.Dir,
		"CODEX_HOME":                       l.CodexHome,
		"CODEX_REFRESH_TOKEN_URL_OVERRIDE": l.Mock.URL,
		"NO_PROXY":                         "*",
		"OUT":                              l.Out,
		"CODEX_LAUNCH_LOG_LEVEL":           "debug",
	}
	for k, v := range l.Env {
		env[k] = v
	}
	var out []string
	for k, v := range env {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

func (l *Launch) argv(extra []string) []string {
	args := append(append([]string{}, l.Args...), extra...)
	if len(l.Child) > 0 {
		args = append(append(args, "--"), l.Child...)
	}
	return args
}

// Start starts codex-launch ARGS EXTRA [-- CHILD], as PID 1 when PID1.
func (l *Launch) Start(extra ...string) {
	l.T.Helper()
	if !l.PID1 {
		l.StartCommand(exec.Command(l.Bin, l.argv(extra)...))
		return
	}
	RequirePIDNamespace(l.T)
	l.StartCommand(exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", l.Bin}, l.argv(extra)...)...))
}

// StartCommand starts cmd (the launcher, or a wrapper of it) in Dir with
// Environ, collecting its output, and watches for its exit; the test's end
// kills what is left.
func (l *Launch) StartCommand(cmd *exec.Cmd) {
	l.T.Helper()
	l.Cmd = cmd
	cmd.Env = l.Environ()
	cmd.Dir = l.Dir
	cmd.Stdout, cmd.Stderr = &l.Output, &l.Output
	if err := cmd.Start(); err != nil {
		l.T.Fatal(err)
	}
	l.done = make(chan struct{})
	go func() {
		l.err = cmd.Wait()
		l.Exited = time.Now()
		close(l.done)
	}()
	l.T.Cleanup(func() {
		select {
		case <-l.done:
		default:
			cmd.Process.Kill()
			<-l.done
		}
	})
}

// Done is closed when the started process has exited.
func (l *Launch) Done() <-chan struct{} { return l.done }

// Wait waits for the run to end and returns codex-launch's exit code (a
// signal that killed the process counts as 128+N). It fails the test when
// the run lasts longer than timeout, or its output carries a token.
func (l *Launch) Wait(timeout time.Duration) int {
	l.T.Helper()
	select {
	case <-l.done:
	case <-time.After(timeout):
		l.Cmd.Process.Kill()
		<-l.done
		l.T.Fatalf("codex-launch did not exit within %s; output:\n%s", timeout, l.Output.String())
	}
	l.CheckNoLeak("codex-launch's output", l.Output.Bytes())
	return exitCode(l.T, l.err)
}

func exitCode(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatalf("running codex-launch: %v", err)
	return -1
}

// Run starts and waits.
func (l *Launch) Run(timeout time.Duration, extra ...string) int {
	l.T.Helper()
	l.Start(extra...)
	return l.Wait(timeout)
}

// Result is how a Command ended.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Output is stdout then stderr.
func (r Result) Output() string { return r.Stdout + r.Stderr }

// Command runs codex-launch ARGS to its end, as a plain child (never PID 1),
// with Environ plus extra (an empty value removes a variable), within 30 s.
// Its output must carry no token.
func (l *Launch) Command(extra map[string]string, args ...string) Result {
	l.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	saved := l.Env
	l.Env = map[string]string{}
	for k, v := range saved {
		l.Env[k] = v
	}
	for k, v := range extra {
		l.Env[k] = v
	}
	env := l.Environ()
	l.Env = saved
	cmd := exec.CommandContext(ctx, l.Bin, args...)
	cmd.Env, cmd.Dir = env, l.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		l.T.Fatalf("codex-launch %q did not end within 30 s:\n%s%s", args, stdout.String(), stderr.String())
	}
	res := Result{Code: exitCode(l.T, err), Stdout: stdout.String(), Stderr: stderr.String()}
	l.CheckNoLeak("codex-launch's output", []byte(res.Output()))
	return res
}

// WaitFile waits until the child has written Out/name and returns it.
func (l *Launch) WaitFile(name string, timeout time.Duration) string {
	l.T.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s := l.OutFile(name); s != "" {
			return s
		}
		select {
		case <-l.done:
			if s := l.OutFile(name); s != "" {
				return s
			}
			l.T.Fatalf("codex-launch exited before the child wrote %s; output:\n%s", name, l.Output.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	l.T.Fatalf("the child did not write %s within %s; output:\n%s", name, timeout, l.Output.String())
	return ""
}

// WaitOutput waits until codex-launch's output holds one of subs.
func (l *Launch) WaitOutput(timeout time.Duration, subs ...string) {
	l.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := l.Output.Bytes()
		for _, s := range subs {
			if bytes.Contains(out, []byte(s)) {
				return
			}
		}
		if time.Now().After(deadline) {
			l.T.Fatalf("codex-launch did not say any of %q within %s; output:\n%s", subs, timeout, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Touch creates Out/name (the child polls for such files).
func (l *Launch) Touch(name string) {
	l.T.Helper()
	if err := os.WriteFile(filepath.Join(l.Out, name), []byte("1"), 0o666); err != nil {
		l.T.Fatal(err)
	}
}

// LauncherPID is codex-launch's pid as seen from here (1 inside its
// namespace when PID1).
func (l *Launch) LauncherPID() int {
	l.T.Helper()
	if !l.PID1 {
		return l.Cmd.Process.Pid
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if kids := ChildrenOf(l.Cmd.Process.Pid); len(kids) > 0 {
			return kids[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.T.Fatal("unshare has no child")
	return 0
}

// Signal sends sig to codex-launch.
func (l *Launch) Signal(sig syscall.Signal) {
	l.T.Helper()
	if err := syscall.Kill(l.LauncherPID(), sig); err != nil {
		l.T.Fatal(err)
	}
}

// CheckNoLeak fails the test when a token the mock minted appears in b.
func (l *Launch) CheckNoLeak(what string, b []byte) {
	l.T.Helper()
	if leaks := l.Mock.Leaks(b); len(leaks) > 0 {
		l.T.Errorf("%s leaks %v", what, leaks)
	}
}

// ChildrenOf lists the live (non-zombie) children of ppid, lowest pid first.
func ChildrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := procstat.Read(pid); err == nil && st.PPid == ppid && !st.Zombie() {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}
