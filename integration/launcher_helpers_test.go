package integration

// Helpers for the launcher tests (launcher_*_test.go): the built codex-launch
// as PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`),
// talking to a loopback tokenmock, running scripted /bin/sh children that
// report what they saw into an output directory.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// launch is one run of codex-launch as PID 1.
type launch struct {
	t         *testing.T
	Dir       string // 0755: scripts live here
	CodexHome string
	Out       string // 0777: the child writes its observations here
	Mock      *tokenmock.Server
	Env       map[string]string // the launcher's environment (beyond the base)
	Args      []string          // launcher flags, before "--"
	Child     []string          // the child's argv

	cmd    *exec.Cmd
	output testenv.Buffer
	done   chan struct{}
	err    error
	exited time.Time
}

// newLaunch prepares a run: directories reachable by any user (so that --user
// tests work), a mock and an empty CODEX_HOME path (not created: boot does).
func newLaunch(t *testing.T, opts tokenmock.Options) *launch {
	t.Helper()
	testenv.RequirePIDNamespace(t)
	builtLauncher(t)
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
	l := &launch{
		t: t, Dir: dir, CodexHome: filepath.Join(dir, "codex"), Out: out, Mock: mock,
		Env: map[string]string{},
	}
	return l
}

// script writes an executable /bin/sh script and returns its path.
func (l *launch) script(name, body string) string {
	l.t.Helper()
	p := filepath.Join(l.Dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// writeAuth puts an auth.json into CODEX_HOME (creating it), as a CLI would
// have left it on a volume.
func (l *launch) writeAuth(data []byte) {
	l.t.Helper()
	if err := os.MkdirAll(l.CodexHome, 0o700); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.CodexHome, "auth.json"), data, 0o600); err != nil {
		l.t.Fatal(err)
	}
}

func (l *launch) readAuth() []byte {
	l.t.Helper()
	data, err := os.ReadFile(filepath.Join(l.CodexHome, "auth.json"))
	if err != nil {
		l.t.Fatal(err)
	}
	return data
}

// outFile reads what the child wrote to Out/name ("" when it did not).
func (l *launch) outFile(name string) string {
	data, err := os.ReadFile(filepath.Join(l.Out, name))
	if err != nil {
		return ""
	}
	return string(data)
}

// environ is the launcher's whole environment: no inherited proxies (the
// mock is on loopback), the mock as the token endpoint, the test's settings.
func (l *launch) environ() []string {
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
	return out
}

// start runs unshare --pid --fork --mount-proc codex-launch ARGS -- CHILD.
func (l *launch) start(extra ...string) {
	l.t.Helper()
	args := []string{"--pid", "--fork", "--mount-proc", "--kill-child", builtLauncher(l.t)}
	args = append(args, l.Args...)
	args = append(args, extra...)
	if len(l.Child) > 0 {
		args = append(args, "--")
		args = append(args, l.Child...)
	}
	l.startUnshare(args)
}

// startUnshare starts `unshare ARGS` as PID 1 of a new namespace with the fixture's
// environment and watches for its exit; the test's end kills what is left.
func (l *launch) startUnshare(args []string) {
	l.t.Helper()
	l.cmd = exec.Command("unshare", args...)
	l.cmd.Env = l.environ()
	l.cmd.Dir = l.Dir
	l.cmd.Stdout = &l.output
	l.cmd.Stderr = &l.output
	if err := l.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.done = make(chan struct{})
	go func() {
		l.err = l.cmd.Wait()
		l.exited = time.Now()
		close(l.done)
	}()
	l.t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			l.cmd.Process.Kill()
			<-l.done
		}
	})
}

// wait waits for the run to end and returns codex-launch's exit code (a
// signal that killed unshare counts as 128+N).
func (l *launch) wait(timeout time.Duration) int {
	l.t.Helper()
	select {
	case <-l.done:
	case <-time.After(timeout):
		l.cmd.Process.Kill()
		<-l.done
		l.t.Fatalf("codex-launch did not exit within %s; output:\n%s", timeout, l.output.String())
	}
	var ee *exec.ExitError
	switch {
	case l.err == nil:
		return 0
	case errors.As(l.err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		l.t.Fatalf("waiting for codex-launch: %v", l.err)
		return -1
	}
}

// run starts and waits.
func (l *launch) run(timeout time.Duration, extra ...string) int {
	l.t.Helper()
	l.start(extra...)
	return l.wait(timeout)
}

// waitFile waits until the child has written Out/name.
func (l *launch) waitFile(name string, timeout time.Duration) string {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s := l.outFile(name); s != "" {
			return s
		}
		select {
		case <-l.done:
			if s := l.outFile(name); s != "" {
				return s
			}
			l.t.Fatalf("codex-launch exited before the child wrote %s; output:\n%s", name, l.output.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	l.t.Fatalf("the child did not write %s within %s; output:\n%s", name, timeout, l.output.String())
	return ""
}

// touch creates Out/name (the child polls for such files).
func (l *launch) touch(name string) {
	l.t.Helper()
	if err := os.WriteFile(filepath.Join(l.Out, name), []byte("1"), 0o666); err != nil {
		l.t.Fatal(err)
	}
}

// launcherPID is codex-launch's pid as seen from here (it is 1 inside).
func (l *launch) launcherPID() int {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if kids := childrenOf(l.cmd.Process.Pid); len(kids) > 0 {
			return kids[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.t.Fatal("unshare has no child")
	return 0
}

// signal sends sig to codex-launch.
func (l *launch) signal(sig syscall.Signal) {
	l.t.Helper()
	if err := syscall.Kill(l.launcherPID(), sig); err != nil {
		l.t.Fatal(err)
	}
}

// checkNoLeak fails when a minted token appears in b.
func (l *launch) checkNoLeak(what string, b []byte) {
	l.t.Helper()
	if leaks := l.Mock.Leaks(b); len(leaks) > 0 {
		l.t.Errorf("%s leaks %v", what, leaks)
	}
}

// authJSON is a ChatGPT auth.json for c as the CLI writes it.
func authJSON(c tokenmock.Credential, lastRefresh time.Time) []byte {
	return tokenmock.FormatAuthJSON(c, lastRefresh, tokenmock.FileOptions{})
}

// holds reports whether data (an auth.json) carries c's refresh and access tokens.
func holds(data []byte, c tokenmock.Credential) bool {
	return bytes.Contains(data, []byte(c.RefreshToken)) && bytes.Contains(data, []byte(c.AccessToken))
}
