package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pid1ExitCodes: `sh -c 'exit N'` must give N for every N in 0..255. The 256
// runs go eight at a time: each is a whole PID namespace.
func pid1ExitCodes(t *testing.T, h *pid1Harness, in *pid1Init) string {
	type result struct{ n, code int }
	results := make(chan result, 256)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				results <- result{n, h.runToEnd(t, in, pid1Opts{}, "sh", "-c", fmt.Sprintf("exit %d", n))}
			}
		}()
	}
	for n := 0; n < 256; n++ {
		work <- n
	}
	close(work)
	wg.Wait()
	close(results)
	var wrong []string
	for r := range results {
		if r.code != r.n {
			wrong = append(wrong, fmt.Sprintf("%d→%d", r.n, r.code))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("exit codes not passed through: %s", strings.Join(wrong, " "))
		return "wrong: " + strings.Join(wrong, " ")
	}
	return "0..255 passed through"
}

// runToEnd runs the child to its end (10 s at most) inside a PID namespace and
// returns the init's exit code.
func (h *pid1Harness) runToEnd(t *testing.T, in *pid1Init, o pid1Opts, child ...string) int {
	r, unsupported := h.start(t, in, o, true, child...)
	if unsupported != "" {
		t.Fatalf("unsupported: %s", unsupported)
	}
	code, ok := r.wait(10 * time.Second)
	if !ok {
		t.Errorf("%v: init still running after 10s", child)
	}
	return code
}

// pid1KilledBySignal: a child killed by signal N gives 128+N.
func pid1KilledBySignal(t *testing.T, h *pid1Harness, in *pid1Init) string {
	var cells []string
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGKILL, syscall.SIGSEGV} {
		code := h.runToEnd(t, in, pid1Opts{}, "sh", "-c", "kill -"+pid1ShortName(sig)+" $$")
		if want := 128 + int(sig); code != want {
			t.Errorf("child killed by %s: init exited %d, want %d", pid1ShortName(sig), code, want)
		}
		cells = append(cells, fmt.Sprintf("%s→%d", pid1ShortName(sig), code))
	}
	return strings.Join(cells, " ")
}

// pid1ExecFailure: a program that is not there, and one that cannot be run.
// tini and codex-launch say 127 and 126 (as a shell does); dumb-init exits 2
// for both.
func pid1ExecFailure(t *testing.T, h *pid1Harness, in *pid1Init) string {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-program")
	cases := []struct {
		what, prog string
		want       int
	}{
		{"missing", missing, 127},
		{"not executable", noexec, 126},
		{"directory", dir, 126},
	}
	var cells []string
	for _, c := range cases {
		r, _ := h.start(t, in, pid1Opts{}, true, c.prog)
		code := r.mustExit(10 * time.Second)
		want := c.want
		if in.name == pid1Dumb {
			want = 2 // dumb-init's exec failure status
		}
		if code != want {
			t.Errorf("%s program: init exited %d, want %d; stderr: %s", c.what, code, want, r.stderr())
		}
		named := strings.Contains(r.stderr(), c.prog)
		if !named {
			t.Errorf("%s program: the message does not name %s: %q", c.what, c.prog, r.stderr())
		}
		cells = append(cells, fmt.Sprintf("%s→%d", c.what, code))
	}
	return strings.Join(cells, ", ") + " (message names the program)"
}

// pid1ExitZero: a runtime that exits 143 on SIGTERM can be reported as a
// success (tini -e 143, codex-launch --exit-zero 143); dumb-init has no such
// option.
func pid1ExitZero(t *testing.T, h *pid1Harness, in *pid1Init) string {
	o := pid1Opts{exitZero: []int{143}}
	r, unsupported := h.start(t, in, o, true, "sh", "-c", "kill -TERM $$")
	if unsupported != "" {
		code := h.runToEnd(t, in, pid1Opts{}, "sh", "-c", "kill -TERM $$")
		if code != 143 {
			t.Errorf("init exited %d, want 143 (no mapping)", code)
		}
		return fmt.Sprintf("%s: stays %d", unsupported, code)
	}
	if code := r.mustExit(10 * time.Second); code != 0 {
		t.Errorf("143 mapped to 0: init exited %d; stderr: %s", code, r.stderr())
	}
	// Other codes are untouched.
	r2, _ := h.start(t, in, o, true, "sh", "-c", "exit 142")
	if code := r2.mustExit(10 * time.Second); code != 142 {
		t.Errorf("142 with 143 mapped: init exited %d, want 142", code)
	}
	return "143→0, 142 stays"
}

// pid1CwdAndEnv: the child runs in the caller's working directory with the
// caller's environment.
func pid1CwdAndEnv(t *testing.T, h *pid1Harness, in *pid1Init) string {
	dir := t.TempDir()
	argv, _ := in.argv(pid1Opts{})
	argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, append(argv, h.child, "whereami")...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), in.env...)
	if in.ownHome {
		cmd.Env = append(cmd.Env, "CODEX_HOME="+pid1Home(t))
	}
	cmd.Env = append(cmd.Env, "PID1_TEST_VAR=caller's value")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("init failed: %v", err)
	}
	want := fmt.Sprintf("cwd=%s var=caller's value", dir)
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("child saw %q, want %q", got, want)
		return got
	}
	return "the caller's"
}
