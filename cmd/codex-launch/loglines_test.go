package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// At the default level a run prints at most three lines, the last of which
// says how the child ended (its code, or the signal by name with 128+N), and
// a failure an operator must act on is exactly one WARN or ERROR line.
func TestDefaultLogLines(t *testing.T) {
	type want struct {
		code   int
		end    string // the child's end, in the last line
		errors int    // ERROR lines
		warns  int    // WARN lines
	}
	check := func(t *testing.T, stderr string, code int, w want) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != w.code {
			t.Errorf("exit %d, want %d", code, w.code)
		}
		if len(lines) > 3 {
			t.Errorf("%d lines at the default level, want at most 3", len(lines))
		}
		if last := lines[len(lines)-1]; !strings.Contains(last, "[INFO]") || !strings.Contains(last, w.end) {
			t.Errorf("the last line does not say %q at INFO: %q", w.end, last)
		}
		if n := strings.Count(stderr, "[ERROR]"); n != w.errors {
			t.Errorf("%d ERROR lines, want %d", n, w.errors)
		}
		if n := strings.Count(stderr, "[WARN]"); n != w.warns {
			t.Errorf("%d WARN lines, want %d", n, w.warns)
		}
		if t.Failed() {
			t.Logf("output:\n%s", stderr)
		}
	}

	t.Run("start and stop", func(t *testing.T) {
		r := newRig(t)
		r.WriteCred("acct-l", 10*time.Hour)
		// The shell makes the marker itself (no touch process that could
		// still be in the group when TERM comes) and becomes the sleep.
		r.Child = []string{"sh", "-c", `echo started >"$OUT/started"; exec sleep 30`}
		r.Start()
		r.WaitFile("started", 20*time.Second)
		r.Signal(syscall.SIGTERM)
		code := r.Wait(10 * time.Second)
		check(t, r.Output.String(), code, want{code: 143, end: "child killed by SIGTERM"})
	})
	t.Run("refreshed, then exit 7", func(t *testing.T) {
		r := newRig(t)
		r.WriteCred("acct-l", time.Minute)
		res := r.Command(nil, "--", "sh", "-c", "exit 7")
		check(t, res.Stderr, res.Code, want{code: 7, end: "child exited with code 7"})
		if !strings.Contains(res.Stderr, "refresh: ok") {
			t.Errorf("the refresh is not one of the lines:\n%s", res.Stderr)
		}
	})
	t.Run("child SIGKILLed", func(t *testing.T) {
		r := newRig(t)
		r.WriteCred("acct-l", 10*time.Hour)
		res := r.Command(nil, "--", "sh", "-c", "kill -KILL $$")
		check(t, res.Stderr, res.Code, want{code: 137, end: "child killed by SIGKILL"})
	})
	// Without --require-auth a dead credential is one ERROR line that asks
	// for a new login, and the child still runs: its code is the exit code.
	t.Run("dead credential", func(t *testing.T) {
		r := newRig(t)
		r.WriteCred("acct-l", time.Minute)
		r.Mock.Script(tokenmock.Error(401, "refresh_token_reused"))
		res := r.Command(map[string]string{"CODEX_LAUNCH_RECHECK_WINDOW": "0"}, "--", "sh", "-c", `echo ran > "$OUT/child-ran"; exit 3`)
		check(t, res.Stderr, res.Code, want{code: 3, end: "child exited with code 3", errors: 1})
		if !strings.Contains(res.Stderr, "new login") {
			t.Errorf("the error line does not ask for a new login:\n%s", res.Stderr)
		}
		if r.OutFile("child-ran") == "" {
			t.Error("the child did not run")
		}
	})
}
