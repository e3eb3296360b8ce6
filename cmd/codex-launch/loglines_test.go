package main

import (
	"os"
	"path/filepath"
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
		r.writeCred(10 * time.Hour)
		started := filepath.Join(r.dir, "started")
		// The shell makes the marker itself (no touch process that could
		// still be in the group when TERM comes) and becomes the sleep.
		cmd, errb, done := startLauncher(t, r.env(), "--", "sh", "-c", `: >"$1"; exec sleep 30`, "sh", started)
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(started); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the child never started:\n%s", errb.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		waitExit(t, done, 10*time.Second, errb, "after TERM")
		check(t, errb.String(), cmd.ProcessState.ExitCode(), want{code: 143, end: "child killed by SIGTERM"})
	})
	t.Run("refreshed, then exit 7", func(t *testing.T) {
		r := newRig(t)
		r.writeCred(time.Minute)
		res := r.run(r.env(), "--", "sh", "-c", "exit 7")
		check(t, res.stderr, res.code, want{code: 7, end: "child exited with code 7"})
		if !strings.Contains(res.stderr, "refresh: ok") {
			t.Errorf("the refresh is not one of the lines:\n%s", res.stderr)
		}
	})
	t.Run("child SIGKILLed", func(t *testing.T) {
		r := newRig(t)
		r.writeCred(10 * time.Hour)
		res := r.run(r.env(), "--", "sh", "-c", "kill -KILL $$")
		check(t, res.stderr, res.code, want{code: 137, end: "child killed by SIGKILL"})
	})
	t.Run("dead credential", func(t *testing.T) {
		r := newRig(t)
		r.writeCred(time.Minute)
		r.srv.Script(tokenmock.Error(401, "refresh_token_reused"))
		res := r.run(r.env("CODEX_LAUNCH_RECHECK_WINDOW=0"), "--", "true")
		check(t, res.stderr, res.code, want{code: 0, end: "child exited with code 0", errors: 1})
	})
}
